"""Schema, defaults, the every-key values file and docs/helm-values.md name the same keys."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.chart.helm import CHART, EVERY_KEY_VALUES, ROOT

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES_DOC = ROOT / "docs" / "helm-values.md"
# Helm passes `global` to every chart, so the schema allows it, but the chart reads nothing from it.
IGNORED = {"global"}


def schema_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the schema's keys; closed objects are walked, other keys are leaves."""
    keys: set[str] = set()
    for name, sub in node["properties"].items():
        if name in IGNORED:
            continue
        path = prefix + name
        if sub.get("type") == "object" and sub.get("additionalProperties") is False:
            keys |= schema_keys(sub, path + ".")
        else:
            keys.add(path)
    return keys


def value_keys(values: dict[str, Any], closed: set[str], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in values.items():
        path = prefix + name
        if path in closed and isinstance(value, dict):
            keys |= value_keys(value, closed, path + ".")
        else:
            keys.add(path)
    return keys


def closed_objects(node: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for name, sub in node["properties"].items():
        if sub.get("type") == "object" and sub.get("additionalProperties") is False:
            found.add(prefix + name)
            found |= closed_objects(sub, prefix + name + ".")
    return found


def test_schema_objects_reject_unknown_keys() -> None:
    """A misspelt key inside `image` or `metrics` must fail like one at the top level."""

    def open_objects(node: dict[str, Any], path: str) -> list[str]:
        found = [] if node.get("additionalProperties") is False else [path or "(top)"]
        for name, sub in node["properties"].items():
            if "properties" in sub:
                found += open_objects(sub, f"{path}.{name}".lstrip("."))
        return found

    assert open_objects(SCHEMA, "") == []


def test_values_file_sets_every_schema_key() -> None:
    values = yaml.safe_load(EVERY_KEY_VALUES.read_text())
    assert value_keys(values, closed_objects(SCHEMA)) == schema_keys(SCHEMA)


def test_default_values_name_only_schema_keys() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert value_keys(values, closed_objects(SCHEMA)) <= schema_keys(SCHEMA)


def test_docs_describe_every_key() -> None:
    doc = VALUES_DOC.read_text()
    missing = sorted(key for key in schema_keys(SCHEMA) if f"| `{key}` |" not in doc)
    assert missing == [], f"docs/helm-values.md lacks a row for {missing}"
