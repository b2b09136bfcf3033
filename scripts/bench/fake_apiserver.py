"""A stand-in Kubernetes API server on 127.0.0.1 for the processing benchmark.

It runs as its own process, so its CPU time never counts as the controller's:

    python -m scripts.bench.fake_apiserver SCENARIO FRAMES

prints its URL on the first line of stdout and serves until SIGTERM or SIGINT.

* A list (GET without `watch`) returns the scenario's objects for that collection, in
  pages of `limit` with a `continue` token, and resourceVersion "1".
* The first watch of a collection sends its headers at once, then waits for
  `POST /_bench/go` and streams the scenario's frames for that collection as fast as the
  client reads them (the socket's flow control paces the writes). It then stays open
  and silent. A later watch of the same collection gets no frames.
* `GET /_bench/stats` returns how many frames each collection's watch has written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from aiohttp import web

from scripts.bench.frames import SCENARIO_NAMES, FrameSource, build_scenario

LOOPBACK = "127.0.0.1"


class FakeApiServer:
    def __init__(self, source: FrameSource) -> None:
        self._source = source
        self._go = asyncio.Event()
        self._watched: set[str] = set()
        self.frames_written: dict[str, int] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/_bench/go", self._start_streaming)
        app.router.add_get("/_bench/stats", self._stats)
        app.router.add_get("/{tail:.*}", self._collection)
        return app

    async def _start_streaming(self, request: web.Request) -> web.Response:
        self._go.set()
        return web.json_response({"ok": True})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response({"frames_written": self.frames_written})

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") in ("true", "1"):
            return await self._watch(request)
        return self._list(request)

    def _list(self, request: web.Request) -> web.Response:
        items = self._source.list_items(request.path)
        limit = int(request.query.get("limit") or len(items) or 1)
        start = int(request.query.get("continue") or 0)
        page = items[start : start + limit]
        metadata: dict[str, str] = {"resourceVersion": "1"}
        if start + limit < len(items):
            metadata["continue"] = str(start + limit)
        body = {"kind": "List", "apiVersion": "v1", "metadata": metadata, "items": page}
        return web.Response(body=json.dumps(body).encode(), content_type="application/json")

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        path = request.path
        if path in self._watched:
            await asyncio.Event().wait()  # later watches stay silent until the client leaves
        self._watched.add(path)
        self.frames_written.setdefault(path, 0)

        await self._go.wait()
        for chunk in self._source.writes(path):
            await response.write(chunk)
            self.frames_written[path] += chunk.count(b"\n")
        await asyncio.Event().wait()
        return response


async def _serve(scenario_name: str, frames: int) -> None:
    server = FakeApiServer(FrameSource(build_scenario(scenario_name, frames)))
    # Watches never end by themselves, so shutdown must not wait long for them.
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    port = runner.addresses[0][1]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"http://{LOOPBACK}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a scenario of the processing benchmark.")
    parser.add_argument("scenario", choices=SCENARIO_NAMES)
    parser.add_argument("frames", type=int, help="number of watch frames in the scenario")
    args = parser.parse_args()
    asyncio.run(_serve(args.scenario, args.frames))


if __name__ == "__main__":
    main()
