"""The `coordination.k8s.io/v1` Lease that replicas compete for, read and written as JSON.

Only the fields leader election uses are modelled. Every update carries the
resourceVersion it was computed from, so when two replicas write at once the API server
accepts one and rejects the other with 409 (`LeaseConflict`). Times are RFC 3339 MicroTime
in UTC, the format the API server stores and `kubectl describe lease` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from logstream.kube.api import JsonDict, KubeApi, KubeError


class LeaseConflict(Exception):
    """Another writer changed the Lease since it was read (HTTP 409)."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The spec of a Lease. An empty `holder` means the Lease is free."""

    holder: str
    duration_seconds: int
    acquire_time: str
    renew_time: str
    transitions: int


@dataclass(frozen=True, slots=True)
class StoredLease:
    """A Lease as the API server returned it, with the version an update must name."""

    record: LeaseRecord
    resource_version: str


class LeaseStore(Protocol):
    """Access to one Lease: read, create, update. `KubeLeaseStore` is the real one."""

    async def get(self) -> StoredLease | None:
        """Return the current Lease, or None when it does not exist."""

    async def create(self, record: LeaseRecord) -> StoredLease:
        """Create the Lease; `LeaseConflict` when another replica created it first."""

    async def update(self, record: LeaseRecord, resource_version: str) -> StoredLease:
        """Replace the spec; `LeaseConflict` when the Lease changed since `resource_version`."""


def micro_time(moment: datetime) -> str:
    """Format `moment` as RFC 3339 in UTC with microseconds: `2026-01-01T10:00:00.000000Z`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class KubeLeaseStore:
    """The Lease `name` in `namespace`, through `KubeApi`."""

    def __init__(self, api: KubeApi, *, namespace: str, name: str) -> None:
        self._api = api
        self.namespace = namespace
        self.name = name
        self._collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    @property
    def display(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    async def get(self) -> StoredLease | None:
        try:
            body = await self._api.request("GET", f"{self._collection}/{self.name}")
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return _stored(body)

    async def create(self, record: LeaseRecord) -> StoredLease:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": _spec(record),
        }
        return await self._write("POST", self._collection, body)

    async def update(self, record: LeaseRecord, resource_version: str) -> StoredLease:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": resource_version,
            },
            "spec": _spec(record),
        }
        return await self._write("PUT", f"{self._collection}/{self.name}", body)

    async def _write(self, method: str, path: str, body: JsonDict) -> StoredLease:
        try:
            return _stored(await self._api.request(method, path, body=body))
        except KubeError as exc:
            if exc.status == 409:
                raise LeaseConflict(exc.message) from exc
            raise


def _spec(record: LeaseRecord) -> JsonDict:
    spec: JsonDict = {
        "leaseDurationSeconds": record.duration_seconds,
        "leaseTransitions": record.transitions,
    }
    # Absent rather than empty: the API server drops empty optional fields anyway.
    if record.holder:
        spec["holderIdentity"] = record.holder
    if record.acquire_time:
        spec["acquireTime"] = record.acquire_time
    if record.renew_time:
        spec["renewTime"] = record.renew_time
    return spec


def _stored(body: JsonDict) -> StoredLease:
    spec: Any = body.get("spec") or {}
    meta: Any = body.get("metadata") or {}
    record = LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_seconds=_int(spec.get("leaseDurationSeconds")),
        acquire_time=str(spec.get("acquireTime") or ""),
        renew_time=str(spec.get("renewTime") or ""),
        transitions=_int(spec.get("leaseTransitions")),
    )
    return StoredLease(record, str(meta.get("resourceVersion") or ""))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
