"""REST client for the Coder agent log API: the step where lines leave the process.

Senders call it with an agent token and a batch; the client turns the batch into one
`PATCH /api/v2/workspaceagents/me/logs`. It uses REST only, because the agent RPC
endpoint marks the agent connected or disconnected on every dial, which the REST routes
never do.

Guarantees:
* One `httpx.AsyncClient` for the whole process, with TLS verification on, the proxy
  variables honoured (`trust_env`) and a timeout on every request.
* Every httpx exception and every unexpected status leaves this module as one of the
  types in `deliver/errors.py`. This is the only place that translates them.
* The token travels only in the `Coder-Session-Token` header. Messages, metrics and
  reprs name the agent by `fingerprint(token)`.
"""

from __future__ import annotations

import email.utils
import math
import os
import ssl
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

import httpx

from logstream import __version__
from logstream.deliver.errors import (
    CoderConnectionError,
    CoderError,
    CoderRouteNotFound,
    CoderStatusError,
    NotCoderServerError,
)
from logstream.lines import AgentToken, LogLine, fingerprint, truncate
from logstream.ops.metrics import Metrics

# The log source every line is filed under. The Go coder-logstream-kube uses the same id,
# so lines from either implementation group under one source in the dashboard.
LOG_SOURCE_ID = "cabdacf8-7c90-425c-9815-cae3c75d1169"
LOG_SOURCE_DISPLAY_NAME = "Kubernetes"
LOG_SOURCE_ICON = "/icon/k8s.png"

BUILDINFO_PATH = "/api/v2/buildinfo"
LOG_SOURCE_PATH = "/api/v2/workspaceagents/me/log-source"
LOGS_PATH = "/api/v2/workspaceagents/me/logs"
TOKEN_HEADER = "Coder-Session-Token"

# Label value of `requests_total{status}` when no response arrived.
STATUS_NO_RESPONSE = "error"


def tls_verify_from_env(environ: Mapping[str, str] | None = None) -> ssl.SSLContext | bool:
    """Build the TLS verification setting: the CAs of SSL_CERT_FILE/SSL_CERT_DIR, else httpx's.

    Raises CoderError when SSL_CERT_FILE names a file that cannot be loaded.
    """
    env = os.environ if environ is None else environ
    cafile = env.get("SSL_CERT_FILE") or None
    capath = env.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        return True
    try:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    except (OSError, ssl.SSLError) as exc:
        raise CoderError(
            f"cannot load CA certificates from SSL_CERT_FILE={cafile!r} "
            f"SSL_CERT_DIR={capath!r}: {exc}; point them at PEM files or unset them"
        ) from None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Convert a `Retry-After` header (delay-seconds or HTTP-date) to seconds from now.

    Returns None when the header is missing or unreadable, so the caller backs off instead.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_http_date(text, now=now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until_http_date(text: str, *, now: datetime | None) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now if now is not None else datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())


def format_created_at(moment: datetime) -> str:
    """Format a time as RFC 3339 in UTC with milliseconds; naive times are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    utc = moment.astimezone(timezone.utc)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_entry(line: LogLine) -> dict[str, str]:
    """Build the JSON object Coder expects for one line of a PATCH body."""
    return {
        "created_at": format_created_at(line.time),
        # Coder would cut longer output silently; cutting here shows a marker instead.
        "output": truncate(line.text),
        "level": line.level.value,
    }


class CoderClient:
    """The agent log routes of one Coder deployment, over one connection pool.

    Use as `async with CoderClient(url, timeout_seconds=...) as client:`; `aclose()` is
    idempotent. Every call may raise only the types of `deliver/errors.py`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        metrics: Metrics | None = None,
        verify: ssl.SSLContext | bool | None = None,
    ) -> None:
        """Prepare the client; `verify=None` reads SSL_CERT_FILE/SSL_CERT_DIR."""
        self._url = url.rstrip("/")
        self._metrics = metrics
        self._server_version: str | None = None
        self._http = httpx.AsyncClient(
            base_url=self._url,
            timeout=httpx.Timeout(timeout_seconds),
            verify=tls_verify_from_env() if verify is None else verify,
            trust_env=True,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": f"logstream-kube/{__version__}"},
        )

    def __repr__(self) -> str:
        return f"CoderClient(url={self._url!r})"

    @property
    def url(self) -> str:
        """The Coder base URL, without a trailing slash."""
        return self._url

    @property
    def server_version(self) -> str | None:
        """The version from the last successful `fetch_server_version()`, else None."""
        return self._server_version

    async def __aenter__(self) -> CoderClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. Calling it again does nothing."""
        await self._http.aclose()

    async def fetch_server_version(self) -> str:
        """Check that the URL is a Coder server and return its version (`v2.31.0+abc1234`).

        Raises NotCoderServerError when the response is not Coder's buildinfo,
        CoderStatusError on a 5xx and CoderConnectionError when no response arrives.
        """
        response = await self._request("GET", BUILDINFO_PATH)
        if response.status_code != 200:
            raise self._buildinfo_status_error(response)
        version = _version_from_buildinfo(response)
        if version is None:
            raise NotCoderServerError(
                f"{self._url} is not a Coder server: GET {BUILDINFO_PATH} returned 200 but "
                "not a JSON object with a 'version' string; check --coder-url, which must "
                "be the Coder access URL such as 'https://coder.example.com'"
            )
        self._server_version = version
        return version

    async def register_log_source(self, token: AgentToken) -> None:
        """Create the `Kubernetes` log source for the agent; Coder keeps the first one."""
        body = {
            "id": LOG_SOURCE_ID,
            "display_name": LOG_SOURCE_DISPLAY_NAME,
            "icon": LOG_SOURCE_ICON,
        }
        response = await self._request("POST", LOG_SOURCE_PATH, token=token, body=body)
        if response.status_code != 201:
            raise await self._agent_route_error(response, "POST", LOG_SOURCE_PATH, token)

    async def patch_logs(self, token: AgentToken, lines: Sequence[LogLine]) -> None:
        """Append `lines`, in order, to the agent's startup log under our log source."""
        body = {"log_source_id": LOG_SOURCE_ID, "logs": [log_entry(line) for line in lines]}
        response = await self._request("PATCH", LOGS_PATH, token=token, body=body)
        if response.status_code != 200:
            raise await self._agent_route_error(response, "PATCH", LOGS_PATH, token)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        token: AgentToken | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """Send one request, record its metrics and translate transport failures."""
        headers = {TOKEN_HEADER: token} if token is not None else None
        started = time.monotonic()
        status = STATUS_NO_RESPONSE
        try:
            response = await self._http.request(method, path, headers=headers, json=body)
            status = str(response.status_code)
            return response
        except httpx.TransportError as exc:
            raise CoderConnectionError(
                f"{method} {self._url}{path} failed{_agent_suffix(token)}: "
                f"{type(exc).__name__}: {exc or 'no detail'}"
            ) from None
        finally:
            self._record(method, status, time.monotonic() - started)

    def _record(self, method: str, status: str, seconds: float) -> None:
        if self._metrics is None:
            return
        self._metrics.requests.labels(method=method, status=status).inc()
        self._metrics.request_seconds.labels(method=method).observe(seconds)

    def _buildinfo_status_error(self, response: httpx.Response) -> CoderError:
        status = response.status_code
        where = f"GET {self._url}{BUILDINFO_PATH} returned {status}"
        if status >= 500:
            return CoderStatusError(f"{where}; Coder may be starting, try again", status=status)
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            return NotCoderServerError(
                f"{where} with a redirect to {location!r}; set --coder-url to the address "
                "Coder serves on (the redirect target, without the path)"
            )
        return NotCoderServerError(
            f"{self._url} is not a Coder server: {where}; check --coder-url, which must be "
            "the Coder access URL such as 'https://coder.example.com'"
        )

    async def _agent_route_error(
        self, response: httpx.Response, method: str, path: str, token: AgentToken
    ) -> CoderError:
        """Translate an error response of an agent route into the error a sender acts on."""
        server_message, detail = _error_fields(response)
        if response.status_code == 404:
            return await self._route_not_found(method, path, server_message)

        text = f"{method} {path} returned {response.status_code}{_agent_suffix(token)}"
        if server_message:
            text += f": {server_message}"
        if detail:
            text += f" ({detail})"
        return CoderStatusError(
            text,
            status=response.status_code,
            server_message=server_message,
            detail=detail,
            retry_after_seconds=parse_retry_after(response.headers.get("Retry-After")),
        )

    async def _route_not_found(self, method: str, path: str, server_message: str) -> CoderError:
        version = self._server_version
        if version is None:
            # Name the version even when the startup check was skipped; never hide the 404.
            try:
                version = await self.fetch_server_version()
            except CoderError:
                version = "of unknown version"
        return CoderRouteNotFound(
            f"Coder {version} at {self._url} returned 404 "
            f"{server_message or 'Not Found'!r} for {method} {path}: this Coder version "
            "does not serve the REST agent log routes logstream-kube sends to, so no line "
            "can be delivered; run a Coder release that serves them"
        )


def _agent_suffix(token: AgentToken | None) -> str:
    return f" for agent {fingerprint(token)}" if token is not None else ""


def _error_fields(response: httpx.Response) -> tuple[str, str]:
    """Return `message` and `detail` of a Coder error body, or a short excerpt of any body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip(), ""
    if not isinstance(body, dict):
        return "", ""
    message = body.get("message")
    detail = body.get("detail")
    return (
        message if isinstance(message, str) else "",
        detail if isinstance(detail, str) else "",
    )


def _version_from_buildinfo(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    version = body.get("version")
    return version if isinstance(version, str) and version else None
