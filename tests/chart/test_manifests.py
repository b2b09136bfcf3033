"""manifests/ contains exactly what scripts/render-manifests.sh renders from the chart."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.chart.helm import ROOT, NAMESPACE, Helm, find, only, parse_documents

MANIFESTS = ROOT / "manifests"
SCRIPT = ROOT / "scripts" / "render-manifests.sh"
FILES = ["logstream-kube.yaml", "logstream-kube-namespaced.yaml"]


def render_into(helm: Helm, out_dir: Path) -> None:
    env = {**helm.env(), "HELM": str(helm.binary)}
    result = subprocess.run(
        ["bash", str(SCRIPT), str(out_dir)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_committed_manifests_match_the_chart(helm: Helm, tmp_path: Path) -> None:
    render_into(helm, tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(FILES)
    for name in FILES:
        assert (MANIFESTS / name).read_text() == (tmp_path / name).read_text(), (
            f"manifests/{name} drifted from the chart; run `make manifests` and commit the result"
        )


@pytest.mark.parametrize("name", FILES)
def test_manifests_use_the_documented_namespace(name: str) -> None:
    objects = parse_documents((MANIFESTS / name).read_text())
    for obj in objects:
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding"}:
            assert obj["metadata"]["namespace"] == NAMESPACE
    assert only(objects, "Deployment")


def test_namespaced_manifest_is_namespace_scoped() -> None:
    objects = parse_documents((MANIFESTS / "logstream-kube-namespaced.yaml").read_text())
    assert find(objects, "ClusterRole") == []
    assert find(objects, "ClusterRoleBinding") == []
