"""The chart grants exactly what the controller reads, in the scope the values ask for."""

from __future__ import annotations

from typing import Any

import pytest

from logstream.kube.resources import INDEXED, EVENTS
from tests.chart.helm import EVERY_KEY_VALUES, NAMESPACE, URL, Helm, find, only

Rule = tuple[str, str, str]  # (API group, resource, verb)

READ: set[Rule] = {
    (group, resource, verb)
    for group, resource in [
        ("", "pods"),
        ("", "events"),
        ("", "persistentvolumeclaims"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("batch", "jobs"),
    ]
    for verb in ("get", "list", "watch")
} | {("", "secrets", "get")}
# Leader election: the Lease, and the ConfigMap holding the delivery checkpoint.
ELECTION: set[Rule] = {
    (group, resource, verb)
    for group, resource in [("coordination.k8s.io", "leases"), ("", "configmaps")]
    for verb in ("get", "create", "update")
}
CLUSTER_SCOPED_KINDS = {"ClusterRole", "ClusterRoleBinding", "Namespace"}


def flatten(rules: list[dict[str, Any]]) -> set[Rule]:
    """Every (group, resource, verb) a list of PolicyRules grants; wildcards fail the test."""
    granted: set[Rule] = set()
    for rule in rules:
        assert "resourceNames" not in rule, rule
        assert "nonResourceURLs" not in rule, rule
        for part in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[part], f"wildcard in {part}: {rule}"
        granted |= {
            (group, resource, verb)
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
    return granted


def test_read_rules_cover_watched_resources() -> None:
    """Tie the expected set to logstream/kube/resources.py, so a new watcher needs a rule."""
    # "/api/v1" is the core group ""; "/apis/apps/v1" is the group "apps".
    expected = {
        (res.api_prefix.removeprefix("/api").removeprefix("s/").split("/")[0], res.plural)
        for res in (*INDEXED, EVENTS)
    }
    assert {(g, r) for g, r, v in READ if v == "watch"} == expected


def test_default_scope_is_one_cluster_role(helm: Helm) -> None:
    objects = helm.render(set_values=[f"url={URL}"])
    role = only(objects, "ClusterRole")
    assert flatten(role["rules"]) == READ
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    service_account = only(objects, "ServiceAccount")
    assert binding["subjects"] == [{
        "kind": "ServiceAccount", "name": service_account["metadata"]["name"], "namespace": NAMESPACE,
    }]
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == service_account["metadata"]["name"]
    assert find(objects, "Role") == []
    assert find(objects, "RoleBinding") == []


def test_namespaces_scope_grants_roles_per_namespace(helm: Helm) -> None:
    objects = helm.render(set_values=[f"url={URL}", "namespaces={ws-a,ws-b}"])
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ws-a", "ws-b"]
    for role in roles:
        assert flatten(role["rules"]) == READ
    bindings = find(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["ws-a", "ws-b"]
    for binding in bindings:
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    assert find(objects, "ClusterRole") == []
    assert find(objects, "ClusterRoleBinding") == []


def test_release_scope_stays_in_namespace(helm: Helm) -> None:
    objects = helm.render(set_values=[f"url={URL}", "rbac.scope=release"])
    for obj in objects:
        assert obj["kind"] not in CLUSTER_SCOPED_KINDS, obj["kind"]
        assert obj["metadata"]["namespace"] == NAMESPACE, f"{obj['kind']} {obj['metadata']}"
    assert flatten(only(objects, "Role")["rules"]) == READ
    env = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "CODER_NAMESPACES", "value": NAMESPACE} in env


@pytest.mark.parametrize("scope", ["cluster", "namespaces", "release"])
def test_election_rules_only_with_leader_election(helm: Helm, scope: str) -> None:
    base = [f"url={URL}", f"rbac.scope={scope}", f"namespaces={{{NAMESPACE}}}"]
    without = helm.render(set_values=base)
    granted = set().union(*(flatten(r["rules"]) for r in find(without, "Role") + find(without, "ClusterRole")))
    assert granted == READ

    with_election = helm.render(set_values=[*base, "leaderElection.enabled=true"])
    roles = find(with_election, "Role") + find(with_election, "ClusterRole")
    election_roles = [r for r in roles if flatten(r["rules"]) & ELECTION]
    assert len(election_roles) == 1
    assert flatten(election_roles[0]["rules"]) == ELECTION
    assert election_roles[0]["kind"] == "Role"
    assert election_roles[0]["metadata"]["namespace"] == NAMESPACE
    granted = set().union(*(flatten(r["rules"]) for r in roles))
    assert granted == READ | ELECTION


def test_election_role_in_lease_namespace(helm: Helm) -> None:
    objects = helm.render(values_files=[EVERY_KEY_VALUES])
    election_roles = [r for r in find(objects, "Role") if flatten(r["rules"]) & ELECTION]
    assert [r["metadata"]["namespace"] for r in election_roles] == ["coder-system"]
    binding = next(
        b for b in find(objects, "RoleBinding")
        if b["roleRef"]["name"] == election_roles[0]["metadata"]["name"]
    )
    assert binding["metadata"]["namespace"] == "coder-system"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "logstream-kube-sa", "namespace": NAMESPACE}
    ]


def test_rbac_create_false_renders_no_rbac_objects(helm: Helm) -> None:
    objects = helm.render(
        set_values=[f"url={URL}", "rbac.create=false", "leaderElection.enabled=true"]
    )
    kinds = {obj["kind"] for obj in objects}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
