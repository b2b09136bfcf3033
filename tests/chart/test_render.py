"""The chart lints, renders what the golden files contain, and renders valid Kubernetes objects.

Golden files: `UPDATE_GOLDEN=1 python -m pytest tests/chart` rewrites golden/*.yaml
from the current chart; review the diff before committing it.
"""

from __future__ import annotations

import os
from typing import Any

import kubernetes_validate
import pytest

from tests.chart.helm import (
    CASES,
    CHART,
    EVERY_KEY_VALUES,
    GO_CHART_VALUES,
    GOLDEN,
    URL,
    Helm,
    container_env,
    find,
    only,
)

# Kubernetes version whose OpenAPI schema the rendered objects must satisfy; the
# kubernetes-validate package ships it, so validation works offline.
KUBERNETES_SCHEMA_VERSION = "1.34"
# Kinds of the Prometheus Operator: not in the Kubernetes schema, checked by shape.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def test_lint_passes_on_default_values_with_url(helm: Helm) -> None:
    result = helm.lint(set_values=[f"url={URL}"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", [EVERY_KEY_VALUES, GO_CHART_VALUES], ids=lambda p: p.stem)
def test_lint_passes_on_values_files(helm: Helm, values: Any) -> None:
    result = helm.lint(values_files=[values])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_matches_golden_file(helm: Helm, case: str) -> None:
    result = helm.template(**CASES[case])
    assert result.returncode == 0, result.stderr
    golden = GOLDEN / f"{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(result.stdout)
    assert golden.exists(), f"{golden} is missing; create it with UPDATE_GOLDEN=1"
    assert result.stdout == golden.read_text(), (
        f"helm template differs from {golden.name}; if the change is intended, "
        "rerun with UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_objects_match_kubernetes_schema(helm: Helm, case: str) -> None:
    objects = helm.render(**CASES[case])
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("kind") in OPERATOR_KINDS:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1", name
            assert isinstance(obj.get("spec"), dict), name
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{case}: {name} is invalid: {exc.message} at {list(exc.path)}")


def test_validator_rejects_pod_security_context_key() -> None:
    """The strict schema catches the Go chart's bug: `podSecurityContext` in the pod spec."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "podSecurityContext": {"fsGroup": 1},
                    "containers": [{"name": "x", "image": "x"}],
                },
            },
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_SCHEMA_VERSION, strict=True)


def test_pod_security_context_lands_in_the_pod_spec(helm: Helm) -> None:
    objects = helm.render(values_files=[GO_CHART_VALUES])
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert "podSecurityContext" not in pod
    assert pod["securityContext"]["fsGroup"] == 1001
    # The defaults stay unless the values replace them.
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_default_security_contexts(helm: Helm) -> None:
    objects = helm.render(set_values=[f"url={URL}"])
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_probes_keep_port_without_metrics(helm: Helm) -> None:
    objects = helm.render(set_values=[f"url={URL}", "metrics.enabled=false", "metrics.port=9100"])
    container = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container_env(objects)["CODER_LOGSTREAM_METRICS_ADDR"]["value"] == ":9100"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert not find(objects, "Service")
    annotations = only(objects, "Deployment")["spec"]["template"]["metadata"].get("annotations", {})
    assert "prometheus.io/scrape" not in annotations


def test_no_port_without_metrics_and_probes(helm: Helm) -> None:
    objects = helm.render(
        set_values=[f"url={URL}", "metrics.enabled=false", "probes.enabled=false"]
    )
    container = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container_env(objects)["CODER_LOGSTREAM_METRICS_ADDR"]["value"] == ""
    assert "ports" not in container
    assert "livenessProbe" not in container


def test_single_replica_uses_recreate_strategy(helm: Helm) -> None:
    """Two pods without leader election would both send every line during a rollout."""
    plain = only(helm.render(set_values=[f"url={URL}"]), "Deployment")
    assert plain["spec"]["strategy"] == {"type": "Recreate"}
    elected = only(
        helm.render(set_values=[f"url={URL}", "replicaCount=2", "leaderElection.enabled=true"]),
        "Deployment",
    )
    assert elected["spec"]["replicas"] == 2
    assert elected["spec"]["strategy"]["type"] == "RollingUpdate"


def test_go_chart_values_keep_their_meaning(helm: Helm) -> None:
    objects = helm.render(values_files=[GO_CHART_VALUES])
    env = container_env(objects)
    assert env["CODER_URL"]["value"] == "http://coder.coder.svc.cluster.local"
    assert env["CODER_NAMESPACES"]["value"] == "coder-ws-1,coder-ws-2"
    assert env["CODER_FIELD_SELECTOR"]["value"] == "status.phase!=Succeeded"
    assert env["CODER_LABEL_SELECTOR"]["value"] == "com.coder.resource=true"
    assert env["CODER_LOGSTREAM_METRICS_ADDR"]["value"] == ":9998"
    pod = only(objects, "Deployment")["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "platform"
    assert pod["spec"]["serviceAccountName"] == "coder-logstream-kube"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "mirror-credentials"}]
    assert pod["spec"]["containers"][0]["image"] == "registry.example.com/mirror/logstream-kube:v0.1.0"
    assert pod["spec"]["containers"][0]["args"] == [
        "--coder-url", "http://coder.coder.svc.cluster.local"
    ]
    assert "tolerations" not in pod["spec"]
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["coder-ws-1", "coder-ws-2"]
    assert {r["metadata"]["name"] for r in roles} == {"coder-logstream-kube-role"}
    bindings = find(objects, "RoleBinding")
    assert {b["metadata"]["name"] for b in bindings} == {"coder-logstream-kube-rolebinding"}


def test_ssl_cert_values_set_tls_variables(helm: Helm) -> None:
    objects = helm.render(values_files=[EVERY_KEY_VALUES])
    env = container_env(objects)
    assert env["SSL_CERT_FILE"]["value"] == "/etc/ssl/coder/ca.pem"
    assert env["SSL_CERT_DIR"]["value"] == "/etc/ssl/coder"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["HTTPS_PROXY"]["value"] == "http://proxy.example.com:3128"
    defaults = container_env(helm.render(set_values=[f"url={URL}"]))
    assert "SSL_CERT_FILE" not in defaults
    assert "SSL_CERT_DIR" not in defaults


def test_pod_disruption_budget_prefers_min_available(helm: Helm) -> None:
    objects = helm.render(values_files=[EVERY_KEY_VALUES])
    assert only(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in only(objects, "PodDisruptionBudget")["spec"]
    plain = helm.render(set_values=[f"url={URL}", "podDisruptionBudget.enabled=true"])
    assert only(plain, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_install_notes_flag_ignored_max_retries(helm: Helm) -> None:
    result = helm.run(
        "install", "--dry-run=client", "logstream-kube", str(CHART),
        "--namespace", "coder", "--values", str(GO_CHART_VALUES),
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "Watching: namespaces coder-ws-1, coder-ws-2 (RBAC scope: namespaces)." in notes
    assert "maxRetries is ignored" in notes
