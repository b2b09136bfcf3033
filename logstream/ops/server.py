"""The ops HTTP server: `/metrics`, `/healthz` and `/readyz` for Prometheus and kubelet.

It runs on the controller's event loop, beside the watchers and senders, and only reads
state: the metrics registry it is given and a readiness callable. The caller owns the
server and stops it; `stop()` is idempotent.

* `/metrics`: the registry in the Prometheus text exposition format.
* `/healthz`: 200 whenever the event loop runs handlers. That is all a liveness probe
  needs to tell, because a blocked loop cannot respond.
* `/readyz`: 200 once `ready()` returns True, else 503 with a one-line reason.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from logstream.ops.logs import fields

log = logging.getLogger("logstream.ops")


class ReadinessCheck(Protocol):
    """Returns True once the controller can do its work (for example, watchers synced)."""

    def __call__(self) -> bool: ...


class OpsServer:
    """Serves the ops endpoints on one host and port until `stop()`."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        registry: CollectorRegistry,
        ready: ReadinessCheck,
        not_ready_reason: str = "not ready: the initial Kubernetes lists have not finished",
    ) -> None:
        """Prepare the server; `port=0` binds a free port, readable from `port` after start."""
        self._host = host
        self._requested_port = port
        self._registry = registry
        self._ready = ready
        self._not_ready_reason = not_ready_reason
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port. Raises RuntimeError before `start()`."""
        if self._port is None:
            raise RuntimeError("OpsServer.port is only known after start()")
        return self._port

    async def __aenter__(self) -> OpsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind the host and port and start serving. Raises OSError if the bind fails."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = _bound_port(runner, fallback=self._requested_port)
        log.info("ops server listening", extra=fields(host=self._host, port=self._port))

    async def stop(self) -> None:
        """Close the listening socket and open connections. Calling it again does nothing."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("ops server stopped", extra=fields(port=self._port))

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        try:
            ready = self._ready()
        except Exception as exc:
            log.exception("readiness check failed")
            return web.Response(status=503, text=f"not ready: readiness check failed: {exc}\n")
        if ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=self._not_ready_reason + "\n")


def _bound_port(runner: web.AppRunner, *, fallback: int) -> int:
    for address in runner.addresses:
        # TCP addresses are (host, port) or (host, port, flowinfo, scope_id) tuples.
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return fallback
