"""The ops server: /metrics, /healthz and /readyz on a port of 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from logstream.ops.metrics import Metrics
from logstream.ops.server import OpsServer


async def test_serves_metrics_health_and_readiness() -> None:
    metrics = Metrics()
    metrics.lines_sent.inc(3)
    ready = False

    async with OpsServer(host="127.0.0.1", port=0, registry=metrics.registry, ready=lambda: ready) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
            exposition = await http.get("/metrics")
            health = await http.get("/healthz")
            not_ready = await http.get("/readyz")
            ready = True
            now_ready = await http.get("/readyz")

    assert exposition.status_code == 200
    assert "coder_logstream_lines_sent_total 3.0" in exposition.text
    assert exposition.headers["content-type"].startswith("text/plain")
    assert health.status_code == 200
    assert not_ready.status_code == 503
    assert "not ready" in not_ready.text
    assert now_ready.status_code == 200


async def test_readiness_check_error_means_not_ready() -> None:
    def broken() -> bool:
        raise RuntimeError("index not built")

    async with OpsServer(host="127.0.0.1", port=0, registry=Metrics().registry, ready=broken) as server:
        async with httpx.AsyncClient(trust_env=False) as http:
            response = await http.get(f"http://127.0.0.1:{server.port}/readyz")

    assert response.status_code == 503
    assert "index not built" in response.text


async def test_stop_closes_port_and_is_idempotent() -> None:
    server = OpsServer(host="127.0.0.1", port=0, registry=Metrics().registry, ready=lambda: True)
    await server.start()
    url = f"http://127.0.0.1:{server.port}/healthz"

    await server.stop()
    await server.stop()

    async with httpx.AsyncClient(trust_env=False) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(url)


async def test_port_in_use_raises_os_error() -> None:
    first = OpsServer(host="127.0.0.1", port=0, registry=Metrics().registry, ready=lambda: True)
    async with first:
        second = OpsServer(host="127.0.0.1", port=first.port, registry=Metrics().registry, ready=lambda: True)
        with pytest.raises(OSError):
            await second.start()
