"""A fake Coder server for tests: the agent log routes over real HTTP on 127.0.0.1.

It serves what the controller's Coder client calls, with the status codes, bodies and
limits of Coder v2 (read from `coderd/workspaceagents.go` and the auth middleware):

* Auth by `Coder-Session-Token` header, `coder_session_token` cookie or query value.
  A missing token, a token that is not a UUID and an unknown token get Coder's three
  401 bodies. A registered token can be "not yet authorized" until a deadline or until
  `authorize()`, like an agent whose workspace build is still provisioning.
* `POST /api/v2/workspaceagents/me/log-source`: 201 with the source echoed; the first
  registration of an id wins.
* `PATCH /api/v2/workspaceagents/me/logs`: 200 `null`. 400 for invalid JSON, an empty
  `logs` list or an unknown level (then nothing of the batch is stored). Output is
  stored cut to 1024 characters. Each agent has a 1 MiB budget of output bytes, counted
  before the cut. A batch that would exceed it gets 413 `Logs limit exceeded` and marks
  the agent overflowed, but a later batch that fits is still stored.
* `GET /api/v2/buildinfo` without auth.
* 404 `{"message": "Route not found."}` for every other route, `startup-logs` included.

Fault injection (`inject()`) responds to matching requests with a status (429 with
`Retry-After`, 5xx, 413), delays them, or closes the connection without a response.
A fault applies to every matching request, the first N, or one request in N, and it
applies before auth.

Everything is recorded: each request (method, path, status, token, arrival time) and,
per token, each stored line in server insertion order.

Use it in-process (`async with FakeCoder() as coder:`) or as a process:

    python -m tests.support.fake_coder --port 0 --agent TOKEN [--unauthorized-seconds N]

which prints its URL on the first line of stdout and serves until SIGINT or SIGTERM.
The control API for such processes, all JSON:

    GET  /_test/lines?token=T  stored lines of a token
    GET  /_test/requests       recorded requests
    POST /_test/agents         {"token", "unauthorized_seconds"?, "held"?, "log_limit_bytes"?}
    POST /_test/authorize      {"token"}
    POST /_test/faults         the keyword arguments of `inject()`
    DELETE /_test/faults       remove every fault
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

BUILDINFO_PATH = "/api/v2/buildinfo"
LOG_SOURCE_PATH = "/api/v2/workspaceagents/me/log-source"
LOGS_PATH = "/api/v2/workspaceagents/me/logs"
CONTROL_PREFIX = "/_test/"

# Coder keeps at most this many characters of a line's output.
MAX_OUTPUT_CHARS = 1024
# Coder's per-agent budget of output bytes (a database check constraint).
AGENT_LOG_LIMIT_BYTES = 1024 * 1024
VALID_LEVELS = frozenset({"trace", "debug", "info", "warn", "error"})

MESSAGE_NO_TOKEN = 'Cookie "coder_session_token" must be provided.'
MESSAGE_TOKEN_INVALID = "Workspace agent token invalid."
MESSAGE_NOT_AUTHORIZED = "Workspace agent not authorized."
MESSAGE_ROUTE_NOT_FOUND = "Route not found."
MESSAGE_BAD_JSON = "Request body must be valid JSON."
MESSAGE_NO_LOGS = "No logs provided."
MESSAGE_BAD_LEVEL = "Invalid log level provided."
MESSAGE_LIMIT = "Logs limit exceeded"


@dataclass(frozen=True, slots=True)
class StoredLine:
    """One line as Coder stored it; `order` is the server-wide insertion number."""

    output: str
    level: str
    created_at: str
    source_id: str
    order: int


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request to a Coder route; `status` is None when the connection was dropped."""

    method: str
    path: str
    status: int | None
    token: str | None
    # time.monotonic() when the request arrived, before any injected delay.
    arrived_at: float
    # Size of the request body, and the number of entries of a PATCH body's `logs` list.
    body_bytes: int = 0
    log_count: int = 0


@dataclass(slots=True)
class Fault:
    """A rule that changes the response to matching requests; see `FakeCoder.inject`."""

    status: int | None = None
    message: str = "injected fault"
    retry_after: str | None = None
    delay_seconds: float = 0.0
    drop_connection: bool = False
    times: int | None = None
    every: int | None = None
    method: str | None = None
    path: str | None = None
    token: str | None = None
    # How many requests matched the filters, and how many the fault was applied to.
    matched: int = 0
    applied: int = 0

    def matches(self, method: str, path: str, token: str | None) -> bool:
        """Tell whether the request passes the method, path and token filters."""
        return (
            (self.method is None or self.method == method)
            and (self.path is None or self.path == path)
            and (self.token is None or self.token == token)
        )

    def take(self) -> bool:
        """Count a matching request and tell whether the fault applies to it."""
        self.matched += 1
        if self.times is not None and self.applied >= self.times:
            return False
        if self.every is not None and self.matched % self.every != 0:
            return False
        self.applied += 1
        return True


@dataclass(slots=True)
class _Agent:
    token: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # time.monotonic() before which the token gets 401, like a build still provisioning.
    authorized_after: float = 0.0
    # True until `authorize()`: the token gets 401 however long that takes.
    held: bool = False
    log_limit_bytes: int = AGENT_LOG_LIMIT_BYTES
    used_bytes: int = 0
    overflowed: bool = False
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    lines: list[StoredLine] = field(default_factory=list)

    def is_authorized(self) -> bool:
        return not self.held and time.monotonic() >= self.authorized_after


class _CoderResponse(Exception):
    """Ends request handling with a JSON response."""

    def __init__(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, message: str, detail: str = "") -> _CoderResponse:
    body: dict[str, str] = {"message": message}
    if detail:
        body["detail"] = detail
    return _CoderResponse(status, body)


def _json_response(status: int, body: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


class FakeCoder:
    """An in-process fake Coder on 127.0.0.1; start it, point a client at `url`."""

    def __init__(
        self,
        *,
        version: str = "v2.31.0+fake",
        serve_log_routes: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Prepare the server. `serve_log_routes=False` plays a Coder without the REST routes;
        an `ssl_context` makes it serve HTTPS."""
        self.version = version
        self.serve_log_routes = serve_log_routes
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._agents: dict[str, _Agent] = {}
        self._faults: list[Fault] = []
        self._insertions = 0
        self.requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL such as `http://127.0.0.1:40123`, known after `start()`."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def __aenter__(self) -> FakeCoder:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind the port and start serving."""
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl_context)
        await site.start()
        for address in self._runner.addresses:
            self._port = int(address[1])

    async def stop(self) -> None:
        """Close the socket and every open connection. Calling it again does nothing."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ---- test-facing setup -------------------------------------------------------------

    def add_agent(
        self,
        token: str,
        *,
        unauthorized_seconds: float = 0.0,
        held: bool = False,
        log_limit_bytes: int = AGENT_LOG_LIMIT_BYTES,
    ) -> None:
        """Register an agent token; it gets 401 for `unauthorized_seconds`, or until
        `authorize()` when `held`. Registering a token again keeps its stored lines."""
        agent = self._agents.get(token) or _Agent(token)
        agent.authorized_after = time.monotonic() + unauthorized_seconds
        agent.held = held
        agent.log_limit_bytes = log_limit_bytes
        self._agents[token] = agent

    def authorize(self, token: str) -> None:
        """Let a token in from now on, ending any hold or deadline."""
        agent = self._agents[token]
        agent.held = False
        agent.authorized_after = 0.0

    def inject(self, **options: Any) -> Fault:
        """Add a fault; the keyword arguments are the fields of `Fault`.

        `status` responds with that status (and `retry_after` as the `Retry-After`
        header), `delay_seconds` waits before responding, `drop_connection` closes the
        connection without a response. `times` limits how many requests it applies to, `every=N`
        applies it to every Nth matching request. `method`, `path` and `token` filter.
        """
        fault = Fault(**options)
        self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    # ---- test-facing records -----------------------------------------------------------

    def lines(self, token: str) -> list[StoredLine]:
        """Lines stored for the token, in insertion order."""
        agent = self._agents.get(token)
        return list(agent.lines) if agent is not None else []

    def texts(self, token: str) -> list[str]:
        """Outputs stored for the token, in insertion order."""
        return [line.output for line in self.lines(token)]

    def log_sources(self, token: str) -> dict[str, dict[str, str]]:
        """Log sources registered by the token, by id."""
        agent = self._agents.get(token)
        return dict(agent.sources) if agent is not None else {}

    def overflowed(self, token: str) -> bool:
        """Tell whether the agent has had a batch rejected with 413."""
        return self._agents[token].overflowed

    def requests_for(
        self, *, token: str | None = None, method: str | None = None, path: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests that match every filter given."""
        return [
            request
            for request in self.requests
            if (token is None or request.token == token)
            and (method is None or request.method == method)
            and (path is None or request.path == path)
        ]

    # ---- HTTP handling -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await self._control(request)

        arrived_at = time.monotonic()
        token = _token_of(request)
        body = await request.read()
        try:
            response = await self._respond(request, token, body)
            status: int | None = response.status
        except _CoderResponse as raised:
            response, status = raised, raised.status
        except _DropConnection:
            response, status = None, None
        self.requests.append(
            RecordedRequest(
                request.method,
                request.path,
                status,
                token,
                arrived_at,
                body_bytes=len(body),
                log_count=_log_count(body),
            )
        )
        if response is None:
            _drop_connection(request)
            return web.Response(status=204)
        return _json_response(response.status, response.body, response.headers)

    async def _respond(self, request: web.Request, token: str | None, body: bytes) -> _CoderResponse:
        """Compute the response; raises _DropConnection to close the connection instead."""
        faulted = await self._apply_faults(request.method, request.path, token)
        if faulted is not None:
            return faulted
        route = (request.method, request.path)
        if route == ("GET", BUILDINFO_PATH):
            return _CoderResponse(200, self._buildinfo())
        if self.serve_log_routes and route == ("POST", LOG_SOURCE_PATH):
            return self._post_log_source(self._authenticate(token), _parse_json(body))
        if self.serve_log_routes and route == ("PATCH", LOGS_PATH):
            return self._patch_logs(self._authenticate(token), _parse_json(body))
        # NOTE: Coder's router may respond 405 to a known path with another method. The
        # fake responds 404 to both, and the controller only relies on the 404.
        raise _error(404, MESSAGE_ROUTE_NOT_FOUND)

    async def _apply_faults(
        self, method: str, path: str, token: str | None
    ) -> _CoderResponse | None:
        for fault in list(self._faults):
            if not fault.matches(method, path, token) or not fault.take():
                continue
            if fault.delay_seconds:
                await asyncio.sleep(fault.delay_seconds)
            if fault.drop_connection:
                raise _DropConnection()
            if fault.status is not None:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                return _CoderResponse(fault.status, {"message": fault.message}, headers)
        return None

    def _authenticate(self, token: str | None) -> _Agent:
        if not token:
            raise _error(401, MESSAGE_NO_TOKEN)
        try:
            uuid.UUID(token)
        except ValueError:
            raise _error(
                401, MESSAGE_TOKEN_INVALID, "An agent token must be a valid UUIDv4."
            ) from None
        agent = self._agents.get(token)
        if agent is None or not agent.is_authorized():
            raise _error(401, MESSAGE_NOT_AUTHORIZED)
        return agent

    def _buildinfo(self) -> dict[str, object]:
        return {
            "external_url": "https://github.com/coder/coder",
            "version": self.version,
            "dashboard_url": self.url,
            "telemetry": False,
            "workspace_proxy": False,
            "agent_api_version": "2.4",
            "upgrade_message": "",
            "deployment_id": "00000000-0000-4000-8000-000000000000",
        }

    def _post_log_source(self, agent: _Agent, body: object) -> _CoderResponse:
        if not isinstance(body, dict):
            raise _error(400, MESSAGE_BAD_JSON, "expected a JSON object")
        source_id = _uuid_field(body, "id")
        display_name = body.get("display_name")
        icon = body.get("icon")
        if not isinstance(display_name, str) or not isinstance(icon, str):
            raise _error(400, MESSAGE_BAD_JSON, "display_name and icon must be strings")
        # The first registration of an id wins, as with Coder's insert-or-ignore.
        source = agent.sources.setdefault(
            source_id,
            {
                "workspace_agent_id": agent.id,
                "id": source_id,
                "created_at": _now_rfc3339(),
                "display_name": display_name,
                "icon": icon,
            },
        )
        return _CoderResponse(201, source)

    def _patch_logs(self, agent: _Agent, body: object) -> _CoderResponse:
        if not isinstance(body, dict):
            raise _error(400, MESSAGE_BAD_JSON, "expected a JSON object")
        source_id = _uuid_field(body, "log_source_id")
        entries = body.get("logs")
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise _error(400, MESSAGE_BAD_JSON, "logs must be a list")
        if not entries:
            raise _error(400, MESSAGE_NO_LOGS)
        parsed = [_parse_entry(entry) for entry in entries]

        size = sum(len(output.encode()) for _, output, _ in parsed)
        if agent.used_bytes + size > agent.log_limit_bytes:
            agent.overflowed = True
            raise _error(413, MESSAGE_LIMIT)
        agent.used_bytes += size
        for created_at, output, level in parsed:
            self._insertions += 1
            agent.lines.append(
                StoredLine(output[:MAX_OUTPUT_CHARS], level, created_at, source_id, self._insertions)
            )
        return _CoderResponse(200, None)

    # ---- control API for standalone use ------------------------------------------------

    async def _control(self, request: web.Request) -> web.Response:
        name = request.path[len(CONTROL_PREFIX) :]
        try:
            result = await self._control_action(request.method, name, request)
        except (KeyError, TypeError, ValueError) as exc:
            return _json_response(400, {"message": f"invalid control request: {exc}"})
        if result is None:
            return _json_response(404, {"message": MESSAGE_ROUTE_NOT_FOUND})
        return _json_response(200, result)

    async def _control_action(self, method: str, name: str, request: web.Request) -> object:
        if (method, name) == ("GET", "lines"):
            return [asdict(line) for line in self.lines(request.query["token"])]
        if (method, name) == ("GET", "requests"):
            return [asdict(recorded) for recorded in self.requests]
        if (method, name) == ("POST", "agents"):
            body = await request.json()
            self.add_agent(
                body["token"],
                unauthorized_seconds=float(body.get("unauthorized_seconds", 0)),
                held=bool(body.get("held", False)),
                log_limit_bytes=int(body.get("log_limit_bytes", AGENT_LOG_LIMIT_BYTES)),
            )
            return {"ok": True}
        if (method, name) == ("POST", "authorize"):
            self.authorize((await request.json())["token"])
            return {"ok": True}
        if (method, name) == ("POST", "faults"):
            fault = self.inject(**(await request.json()))
            return {"ok": True, "fault": asdict(fault)}
        if (method, name) == ("DELETE", "faults"):
            self.clear_faults()
            return {"ok": True}
        return None


class _DropConnection(Exception):
    """Raised by a fault to close the connection without a response."""


def _drop_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


def _token_of(request: web.Request) -> str | None:
    """Find the token the way Coder does: cookie, then query, then header."""
    return (
        request.cookies.get("coder_session_token")
        or request.query.get("coder_session_token")
        or request.headers.get("Coder-Session-Token")
        or None
    )


def _parse_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _error(400, MESSAGE_BAD_JSON, str(exc)) from None


def _log_count(body: bytes) -> int:
    try:
        logs = json.loads(body).get("logs")
    except (ValueError, AttributeError):
        return 0
    return len(logs) if isinstance(logs, list) else 0


def _uuid_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else str(uuid.UUID(int=0))
    except ValueError:
        raise _error(400, MESSAGE_BAD_JSON, f"{name}: invalid UUID {value!r}") from None


def _parse_entry(entry: object) -> tuple[str, str, str]:
    """Validate one log entry and return (created_at, output, level)."""
    if not isinstance(entry, dict):
        raise _error(400, MESSAGE_BAD_JSON, "each log must be an object")
    created_at = entry.get("created_at", "")
    output = entry.get("output", "")
    level = entry.get("level", "")
    if not isinstance(created_at, str) or not isinstance(output, str) or not isinstance(level, str):
        raise _error(400, MESSAGE_BAD_JSON, "created_at, output and level must be strings")
    try:
        datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        raise _error(400, MESSAGE_BAD_JSON, f"created_at: not RFC 3339: {created_at!r}") from None
    level = level or "info"
    if level not in VALID_LEVELS:
        raise _error(400, MESSAGE_BAD_LEVEL, f"invalid log level: {json.dumps(level)}")
    return created_at, output, level


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- standalone process --------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a fake Coder agent log API.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--agent", action="append", default=[], metavar="TOKEN", help="agent token to accept"
    )
    parser.add_argument(
        "--unauthorized-seconds",
        type=float,
        default=0.0,
        help="respond with 401 to the --agent tokens for this many seconds after start",
    )
    parser.add_argument("--version", default="v2.31.0+fake", help="version in buildinfo")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    coder = FakeCoder(version=args.version, host=args.host, port=args.port)
    for token in args.agent:
        coder.add_agent(token, unauthorized_seconds=args.unauthorized_seconds)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with coder:
        print(coder.url, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Run the fake Coder until SIGINT or SIGTERM."""
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
