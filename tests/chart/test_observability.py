"""The Grafana dashboard and the PrometheusRule query only metrics the controller exports.

The exported names come from a real scrape: the product's ops server runs in-process
on 127.0.0.1 with a fresh `Metrics`, every labelled family touched once so that it
appears in the exposition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from logstream.ops.metrics import Metrics
from logstream.ops.server import OpsServer
from tests.chart.helm import CHART, URL, Helm, only

DASHBOARD = CHART / "dashboards" / "logstream-kube.json"
METRIC_NAME = re.compile(r"\bcoder_logstream_[a-z0-9_]+")
# Families the dashboard must show, by exported sample name.
REQUIRED_ON_DASHBOARD = {
    "coder_logstream_lines_sent_total",
    "coder_logstream_lines_dropped_total",
    "coder_logstream_requests_total",
    "coder_logstream_request_duration_seconds_bucket",
    "coder_logstream_agents_active",
    "coder_logstream_queue_depth",
    "coder_logstream_watch_restarts_total",
}
ALERTS = {
    "LogstreamKubeDeliveryFailing",
    "LogstreamKubeLinesDropped",
    "LogstreamKubeWatchRestarting",
    "LogstreamKubeNotOneLeader",
    "LogstreamKubeCheckpointFailing",
}


def touch_every_labelled_metric(metrics: Metrics) -> None:
    """Create one child per labelled family; a family without children is not exported."""
    for metric in vars(metrics).values():
        # NB: `_labelnames` is private, but it keeps this loop right as metrics are added.
        if isinstance(metric, MetricWrapperBase) and metric._labelnames:
            metric.labels(*("test",) * len(metric._labelnames))


@pytest.fixture
async def exported_names() -> set[str]:
    """Sample names of a real scrape of /metrics over HTTP."""
    metrics = Metrics()
    touch_every_labelled_metric(metrics)
    async with OpsServer(host="127.0.0.1", port=0, registry=metrics.registry, ready=lambda: True) as server:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/metrics")
    assert response.status_code == 200
    return {
        sample.name
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def strings_in(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {name for text in strings_in(dashboard) for name in METRIC_NAME.findall(text)}


def test_scrape_contains_labelled_families(exported_names: set[str]) -> None:
    assert "coder_logstream_requests_total" in exported_names
    assert "coder_logstream_watch_restarts_total" in exported_names


def test_dashboard_queries_only_exported_metrics(exported_names: set[str]) -> None:
    used = dashboard_metric_names()
    assert REQUIRED_ON_DASHBOARD <= used
    assert used - exported_names == set()


def test_alert_rules_query_only_exported_metrics(helm: Helm, exported_names: set[str]) -> None:
    objects = helm.render(set_values=[f"url={URL}", "prometheusRule.enabled=true"])
    rule = only(objects, "PrometheusRule")
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert {r["alert"] for r in rules} == ALERTS
    for alert in rules:
        used = set(METRIC_NAME.findall(alert["expr"]))
        assert used, alert["alert"]
        assert used - exported_names == set(), alert["alert"]
        # Helm must leave Prometheus's own template markers in place.
        assert "{{ $labels." in alert["annotations"]["description"]


def test_dashboard_config_map_for_grafana_sidecar(helm: Helm) -> None:
    objects = helm.render(set_values=[f"url={URL}", "dashboards.enabled=true"])
    config_map = only(objects, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(config_map["data"]["logstream-kube.json"])
    assert shipped == json.loads(DASHBOARD.read_text())


def test_monitoring_objects_are_off_by_default(helm: Helm) -> None:
    kinds = {obj["kind"] for obj in helm.render(set_values=[f"url={URL}"])}
    assert kinds & {"ConfigMap", "PrometheusRule", "ServiceMonitor", "PodDisruptionBudget"} == set()


def test_service_monitor_selects_the_metrics_service(helm: Helm) -> None:
    objects = helm.render(set_values=[f"url={URL}", "metrics.serviceMonitor.enabled=true"])
    monitor = only(objects, "ServiceMonitor")
    service = only(objects, "Service")
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
