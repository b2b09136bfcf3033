"""Values the chart must refuse, each with a message that names the value and the fix.

The schema (values.schema.json) rejects unknown keys and wrong types; template
checks reject combinations the schema cannot express.
"""

from __future__ import annotations

import pytest

from tests.chart.helm import URL, Helm

REJECTED = [
    pytest.param(
        [f"url={URL}", "replicas=2"], [], ["additional properties 'replicas' not allowed"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        [f"url={URL}", "metrics.enable=true"], [], ["/metrics", "'enable' not allowed"],
        id="misspelt-nested-key",
    ),
    pytest.param(
        [f"url={URL}", "image.repository=example/image"], [], ["/image", "'repository' not allowed"],
        id="image-repository-instead-of-repo",
    ),
    pytest.param(
        [f"url={URL}", "replicaCount=two"], [], ["/replicaCount", "want integer"],
        id="replica-count-not-a-number",
    ),
    pytest.param(
        [f"url={URL}"], ['metrics={"port": "9100"}'], ["/metrics/port", "want integer"],
        id="port-as-string",
    ),
    pytest.param(
        [f"url={URL}"], ["leaderElection=true"], ["/leaderElection", "want object"],
        id="object-given-a-boolean",
    ),
    pytest.param(
        [f"url={URL}", "rbac.scope=everywhere"], [], ["/rbac/scope"],
        id="unknown-rbac-scope",
    ),
    pytest.param(
        ["url=coder.example.com"], [], ["/url", "does not match pattern"],
        id="url-without-scheme",
    ),
    pytest.param(
        [], [], ["url is required", "--set url=https://coder.example.com"],
        id="missing-url",
    ),
    pytest.param(
        [f"url={URL}", "replicaCount=2"], [],
        ["replicaCount is 2", "leaderElection.enabled=true"],
        id="two-replicas-without-leader-election",
    ),
    pytest.param(
        [f"url={URL}", "rbac.scope=namespaces"], [],
        ["rbac.scope=namespaces needs at least one namespace"],
        id="namespaces-scope-without-namespaces",
    ),
    pytest.param(
        [f"url={URL}", "rbac.scope=release", "namespaces={other}"], [],
        ['rbac.scope=release watches only the release namespace "coder"', '"other"'],
        id="release-scope-with-another-namespace",
    ),
    pytest.param(
        [f"url={URL}", "rbac.scope=release", "rbac.clusterWide=true"], [],
        ["rbac.clusterWide=true contradicts rbac.scope"],
        id="cluster-wide-contradicts-scope",
    ),
    pytest.param(
        [f"url={URL}", "metrics.enabled=false", "metrics.serviceMonitor.enabled=true"], [],
        ["metrics.serviceMonitor.enabled=true needs metrics.enabled=true"],
        id="service-monitor-without-metrics",
    ),
]


@pytest.mark.parametrize(("set_values", "set_json", "expected"), REJECTED)
def test_rejected_values_fail_with_a_clear_message(
    helm: Helm, set_values: list[str], set_json: list[str], expected: list[str]
) -> None:
    result = helm.template(set_values=set_values, set_json=set_json)
    assert result.returncode != 0, f"helm accepted {set_values} {set_json}:\n{result.stdout}"
    assert result.stdout == ""
    for fragment in expected:
        assert fragment in result.stderr, f"{fragment!r} not in helm's stderr:\n{result.stderr}"


def test_lint_applies_the_schema(helm: Helm) -> None:
    # NB: `helm lint` turns template `fail` calls into log lines by design, so only the
    # schema's rejections fail it; `helm template` and `helm install` enforce both.
    result = helm.lint(set_values=[f"url={URL}", "replicas=2"])
    assert result.returncode != 0
    assert "additional properties 'replicas' not allowed" in result.stdout + result.stderr
