"""Fixtures that run the product: the fake Coder, controller processes, object helpers."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Controller, FakeCoder
from tests.support.objects import Obj

_PLURALS = {
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "Event": "/api/v1/namespaces/{ns}/events",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
}


class Objects:
    """Create and update test objects in the API server as a kubelet or controller would."""

    def __init__(self, admin: Any) -> None:
        self.admin = admin

    def path(self, obj: Obj) -> str:
        meta = obj["metadata"]
        return _PLURALS[obj["kind"]].format(ns=meta["namespace"]) + f"/{meta['name']}"

    def create(self, obj: Obj) -> Obj:
        """Create `obj` (its test uid dropped); the stored object, with the server's uid."""
        body = copy.deepcopy(obj)
        body["metadata"].pop("uid", None)
        collection = _PLURALS[body["kind"]].format(ns=body["metadata"]["namespace"])
        created: Obj = self.admin.create(collection, body)
        return created

    def patch(self, obj: Obj, body: dict[str, Any], *, subresource: str = "") -> Obj:
        path = self.path(obj) + (f"/{subresource}" if subresource else "")
        patched: Obj = self.admin.patch(path, body)
        return patched

    def delete(self, obj: Obj) -> None:
        self.admin.delete(self.path(obj))


@pytest.fixture
def objects(kube_admin: Any) -> Objects:
    return Objects(kube_admin)


@pytest.fixture(scope="session")
def fake_coder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCoder]:
    coder = FakeCoder(tmp_path_factory.mktemp("fake-coder"))
    try:
        yield coder
    finally:
        coder.stop()


ControllerFactory = Callable[..., Controller]


@pytest.fixture
def start_controller(
    cluster: Any, fake_coder: FakeCoder, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ControllerFactory]:
    """Start `logstream-kube` processes; all are stopped after the test, logs kept on failure."""
    started: list[Controller] = []

    def start(*args: str, kubeconfig: Path | str | None = None, wait_ready: bool = True, **env: str) -> Controller:
        controller = Controller(
            kubeconfig=kubeconfig or cluster.admin_kubeconfig,
            coder_url=fake_coder.url,
            log_path=tmp_path / f"controller-{len(started)}.log",
            args=args,
            env=env,
        )
        started.append(controller)
        if wait_ready:
            controller.wait_ready()
        return controller

    yield start
    for controller in started:
        controller.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for controller in started:
            print(f"--- {controller.log_path} ---\n{controller.log_text()[-6000:]}")


# What the controller reads, and nothing else: the RBAC the chart grants minus secrets.
READ_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["pods", "events", "persistentvolumeclaims"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["replicasets", "statefulsets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
]
SECRET_RULE: dict[str, Any] = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}


def service_account_kubeconfig(
    cluster: Any, admin: Any, *, namespace: str, name: str, rules: list[dict[str, Any]], path: Path,
    cluster_wide: bool = False,
) -> Path:
    """A kubeconfig for a new service account granted `rules` in `namespace` (or everywhere)."""
    from tests.testbed.cluster import write_token_kubeconfig

    admin.create(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}})
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "name": f"{namespace}-{name}"}
    if cluster_wide:
        admin.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {"metadata": {"name": f"{namespace}-{name}"}, "rules": rules})
        admin.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                     {"metadata": {"name": f"{namespace}-{name}"}, "subjects": subject, "roleRef": {**role_ref, "kind": "ClusterRole"}})
    else:
        admin.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles", {"metadata": {"name": f"{namespace}-{name}"}, "rules": rules})
        admin.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
                     {"metadata": {"name": f"{namespace}-{name}"}, "subjects": subject, "roleRef": {**role_ref, "kind": "Role"}})
    token = admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )["status"]["token"]
    ca_pem = Path(cluster.ca_file).read_bytes()
    return write_token_kubeconfig(path, cluster.server_url, ca_pem, name, token)
