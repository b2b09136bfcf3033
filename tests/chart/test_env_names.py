"""Every environment variable the chart sets for the controller is one the controller reads.

The Go implementation documented variables it never read; this keeps the chart from
doing the same. Names come from both the templates' source (every branch) and the
rendered Deployments; the product's names come from `logstream.config.Settings`.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from logstream.config import Settings
from tests.chart.helm import CASES, CHART, Helm, container_env

# Variables read by the libraries or the platform rather than by Settings.
NOT_SETTINGS = {"SSL_CERT_FILE", "SSL_CERT_DIR", "POD_NAME", "POD_NAMESPACE"}
# Names the product owns: a name of this form must be a setting.
PRODUCT_NAME = re.compile(r"^(CODER_[A-Z0-9_]+|KUBECONFIG)$")
ENV_NAME_IN_TEMPLATE = re.compile(r"-\s+name:\s+([A-Z][A-Z0-9_]*)\s*$", re.MULTILINE)


def product_env_names() -> set[str]:
    return {
        str(field.validation_alias)
        for field in Settings.model_fields.values()
        if field.validation_alias is not None
    }


def unknown(names: set[str]) -> set[str]:
    return {name for name in names if PRODUCT_NAME.match(name)} - product_env_names()


def test_template_env_names_are_settings() -> None:
    names = {
        match
        for template in (CHART / "templates").glob("*.yaml")
        for match in ENV_NAME_IN_TEMPLATE.findall(template.read_text())
    }
    assert {"CODER_URL", "CODER_NAMESPACES", "CODER_LOGSTREAM_METRICS_ADDR"} <= names
    assert unknown(names) == set()
    assert names - NOT_SETTINGS - product_env_names() == set()


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_env_names_are_settings(helm: Helm, case: str) -> None:
    env = container_env(helm.render(**CASES[case]))
    assert unknown(set(env)) == set()


@pytest.mark.parametrize("case", ["default", "every-key", "release-scope"])
def test_rendered_env_values_pass_settings(
    helm: Helm, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The literal values the chart sets pass the product's own validation."""
    env = container_env(helm.render(**CASES[case]))
    literal: dict[str, Any] = {
        name: entry["value"] for name, entry in env.items() if "value" in entry
    }
    literal["POD_NAME"] = "logstream-kube-0"
    literal["POD_NAMESPACE"] = "coder"
    for name, value in literal.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.coder_url == literal["CODER_URL"].rstrip("/")
    assert settings.metrics_host_port is not None
