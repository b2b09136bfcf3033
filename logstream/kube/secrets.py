"""Read agent tokens out of Secrets, on demand, with a short cache.

Secret values never leave this module except as the returned string; nothing here logs
them. A missing Secret is an ordinary outcome (`None`); a denied read raises
`SecretForbidden` so the caller can warn about the pod that needed it.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass

from logstream.kube.api import KubeApi, KubeError

# Long enough that a burst of pods sharing a Secret costs one read, short enough that a
# rotated token is picked up within a minute.
CACHE_SECONDS = 30.0


class SecretForbidden(PermissionError):
    """The controller's service account may not read this Secret."""


@dataclass(slots=True)
class _Cached:
    data: dict[str, str] | None  # None: the Secret does not exist
    forbidden: bool
    fetched_at: float


class SecretReader:
    """`read_key(namespace, name, key)` with a per-Secret cache."""

    def __init__(self, api: KubeApi, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self._api = api
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], _Cached] = {}

    async def read_key(self, namespace: str, name: str, key: str) -> str | None:
        """The decoded value, or None when the Secret or the key does not exist."""
        entry = self._cache.get((namespace, name))
        if entry is None or time.monotonic() - entry.fetched_at > self._cache_seconds:
            entry = await self._fetch(namespace, name)
            self._cache[(namespace, name)] = entry
        if entry.forbidden:
            raise SecretForbidden(f"reading secret {namespace}/{name} is forbidden")
        return None if entry.data is None else entry.data.get(key)

    async def read_all(self, namespace: str, name: str) -> dict[str, str] | None:
        """Every decoded key of the Secret, or None when it does not exist."""
        await self.read_key(namespace, name, "")
        entry = self._cache[(namespace, name)]
        return None if entry.data is None else dict(entry.data)

    async def _fetch(self, namespace: str, name: str) -> _Cached:
        now = time.monotonic()
        try:
            secret = await self._api.request(
                "GET", f"/api/v1/namespaces/{namespace}/secrets/{name}"
            )
        except KubeError as exc:
            if exc.status == 404:
                return _Cached(None, False, now)
            if exc.status in (401, 403):
                return _Cached(None, True, now)
            raise
        return _Cached(_decode(secret), False, now)

    def forget(self, namespace: str, name: str) -> None:
        self._cache.pop((namespace, name), None)


def _decode(secret: dict[str, object]) -> dict[str, str]:
    decoded: dict[str, str] = {}
    data = secret.get("data")
    if isinstance(data, dict):
        for key, value in data.items():
            try:
                decoded[str(key)] = base64.b64decode(str(value)).decode().strip()
            except (binascii.Error, UnicodeDecodeError):
                continue
    string_data = secret.get("stringData")
    if isinstance(string_data, dict):
        decoded.update({str(k): str(v).strip() for k, v in string_data.items()})
    return decoded
