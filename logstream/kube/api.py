"""Raw JSON access to the API server over kubernetes_asyncio's authenticated session.

The generated models re-parse every object and reject some real ones (legacy events),
so the controller only borrows the client's configuration, auth and connection pool and
works on plain dicts. Failures become `KubeError` with the HTTP status, in one place.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient

JsonDict = dict[str, Any]


# `KubeError.reason` of a watch that sent nothing for its read timeout.
STREAM_IDLE = "StreamIdle"


class KubeError(Exception):
    """The API server answered with an error status, or the connection failed (status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def gone(self) -> bool:
        """The resourceVersion or continue token is too old: only a fresh list helps."""
        return self.status == 410

    @property
    def idle(self) -> bool:
        """A watch sent nothing for its read timeout: a dead connection or a quiet resource."""
        return self.reason == STREAM_IDLE


def status_error(body: Mapping[str, Any], status: int | None = None) -> KubeError:
    """Build a KubeError from a `Status` object (an error body or a watch ERROR frame)."""
    code = body.get("code")
    return KubeError(
        int(code) if isinstance(code, int) else (status or 500),
        str(body.get("reason") or ""),
        str(body.get("message") or ""),
    )


class KubeApi:
    """GET, PUT, POST and streaming GET on raw JSON."""

    def __init__(self, client: ApiClient, *, request_timeout_seconds: float) -> None:
        self._client = client
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_seconds)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: JsonDict | None = None,
    ) -> JsonDict:
        """One request; the decoded JSON body on 2xx, `KubeError` otherwise."""
        response = await self._call(method, path, params, body, self._timeout)
        async with response:
            raw = await response.read()
            if response.status >= 300:
                raise _error_from_body(response.status, raw)
        decoded = json.loads(raw)
        if not isinstance(decoded, dict):
            raise KubeError(response.status, "BadResponse", f"{path} did not answer an object")
        return decoded

    async def stream(
        self, path: str, *, params: Mapping[str, str | int], read_timeout_seconds: float
    ) -> AsyncIterator[bytes]:
        """A watch: yields one JSON frame (one line) at a time until the server ends it.

        `read_timeout_seconds` bounds the silence between frames, so a dead connection
        ends in a `KubeError` instead of hanging; bookmarks keep a healthy watch chatty.
        """
        timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=read_timeout_seconds)
        response = await self._call("GET", path, params, None, timeout)
        async with response:
            if response.status >= 300:
                raise _error_from_body(response.status, await response.read())
            try:
                async for line in response.content:
                    if line.strip():
                        yield line
            except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
                raise KubeError(
                    0, STREAM_IDLE, f"watch on {path} sent nothing for {read_timeout_seconds:g} s"
                ) from exc
            except aiohttp.ClientError as exc:
                raise KubeError(0, "StreamBroken", f"watch on {path} broke: {exc!r}") from exc

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        body: JsonDict | None,
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response: aiohttp.ClientResponse = await self._client.call_api(
                path,
                method,
                query_params=list((params or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise KubeError(0, "ConnectionFailed", f"{method} {path} failed: {exc!r}") from exc
        return response


def _error_from_body(status: int, raw: bytes) -> KubeError:
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        return status_error(decoded, status)
    return KubeError(status, "HTTPError", raw[:200].decode("utf-8", "replace"))
