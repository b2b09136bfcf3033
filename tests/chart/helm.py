"""Run the real helm binary of the test bed against the chart in helm/.

Every call gets its own HELM_* directories and a HOME under the test's temporary
directory, and no kubeconfig: `helm template` and `helm lint` never contact a cluster.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm"
TESTS = Path(__file__).resolve().parent
GOLDEN = TESTS / "golden"
EVERY_KEY_VALUES = TESTS / "values-every-key.yaml"
GO_CHART_VALUES = TESTS / "values-go-chart.yaml"

RELEASE = "logstream-kube"
NAMESPACE = "coder"
URL = "https://coder.example.com"
# Seconds one helm command may take; rendering this chart takes well under one.
HELM_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Helm:
    """The helm binary with an isolated environment."""

    binary: Path
    home: Path

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            # A path that does not exist: nothing here may reach a cluster.
            "KUBECONFIG": str(self.home / "no-kubeconfig"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=HELM_TIMEOUT_SECONDS,
            check=False,
        )

    def template(
        self,
        *,
        values_files: Sequence[Path] = (),
        set_values: Sequence[str] = (),
        set_json: Sequence[str] = (),
        namespace: str = NAMESPACE,
    ) -> subprocess.CompletedProcess[str]:
        """`helm template` of the chart; the caller checks the exit code."""
        return self.run(
            "template", RELEASE, str(CHART), "--namespace", namespace,
            *_value_args(values_files, set_values, set_json),
        )

    def render(
        self,
        *,
        values_files: Sequence[Path] = (),
        set_values: Sequence[str] = (),
        set_json: Sequence[str] = (),
        namespace: str = NAMESPACE,
    ) -> list[dict[str, Any]]:
        """The rendered objects; fails the test with helm's stderr when helm fails."""
        result = self.template(
            values_files=values_files, set_values=set_values, set_json=set_json, namespace=namespace
        )
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        return parse_documents(result.stdout)

    def lint(
        self, *, values_files: Sequence[Path] = (), set_values: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "lint", "--strict", str(CHART), "--namespace", NAMESPACE,
            *_value_args(values_files, set_values, ()),
        )


def _value_args(
    values_files: Iterable[Path], set_values: Iterable[str], set_json: Iterable[str]
) -> list[str]:
    args: list[str] = []
    for path in values_files:
        args += ["--values", str(path)]
    for item in set_values:
        args += ["--set", item]
    for item in set_json:
        args += ["--set-json", item]
    return args


def parse_documents(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a multi-document stream."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj.get("kind") == kind]


def only(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = find(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container_env(objects: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The controller container's env entries, by name."""
    deployment = only(objects, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {entry["name"]: entry for entry in container.get("env", [])}


# The rendered cases kept as golden files in golden/<name>.yaml.
CASES: dict[str, dict[str, Any]] = {
    "default": {"set_values": [f"url={URL}"]},
    "every-key": {"values_files": [EVERY_KEY_VALUES]},
    "release-scope": {"set_values": [f"url={URL}", "rbac.scope=release"]},
    "go-chart-values": {"values_files": [GO_CHART_VALUES]},
}
