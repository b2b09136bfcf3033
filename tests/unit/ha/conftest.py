"""Fixtures for the leader-election and checkpoint units: an in-memory Lease, a
recording dispatcher stand-in, and a check that no test leaves a task running."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from logstream.ha.lease import LeaseConflict, LeaseRecord, StoredLease
from logstream.kube.api import KubeError
from logstream.lines import AgentToken, LogLine
from tests.support.tasks import no_task_left_running  # noqa: F401 (autouse fixture)


class MemoryLeaseStore:
    """A Lease with resourceVersion checks, like the API server's, in memory.

    `failing` makes every call raise a connection error; `hanging` makes every call wait
    forever, like a partitioned API server.
    """

    def __init__(self) -> None:
        self.stored: StoredLease | None = None
        self.version = 0
        self.failing = False
        self.hanging = False
        self.writes: list[LeaseRecord] = []

    async def _gate(self) -> None:
        if self.hanging:
            await asyncio.Event().wait()
        if self.failing:
            raise KubeError(0, "ConnectionFailed", "connection refused")

    def put(self, record: LeaseRecord) -> StoredLease:
        """Write as another replica would, without a version check."""
        self.version += 1
        self.stored = StoredLease(record, str(self.version))
        return self.stored

    async def get(self) -> StoredLease | None:
        await self._gate()
        return self.stored

    async def create(self, record: LeaseRecord) -> StoredLease:
        await self._gate()
        if self.stored is not None:
            raise LeaseConflict("already exists")
        self.writes.append(record)
        return self.put(record)

    async def update(self, record: LeaseRecord, resource_version: str) -> StoredLease:
        await self._gate()
        if self.stored is None or self.stored.resource_version != resource_version:
            raise LeaseConflict("the object has been modified")
        self.writes.append(record)
        return self.put(record)


@pytest.fixture
def lease_store() -> MemoryLeaseStore:
    return MemoryLeaseStore()


@dataclass
class RecordingDelivery:
    """Stands in for the dispatcher: records what the gate hands it."""

    submitted: list[LogLine] = field(default_factory=list)
    released: list[AgentToken] = field(default_factory=list)
    paused: bool = False
    calls: list[str] = field(default_factory=list)

    def submit(self, line: LogLine) -> None:
        self.submitted.append(line)

    def release(self, token: AgentToken) -> None:
        self.released.append(token)
        self.calls.append(f"release {token}")

    def pause(self) -> None:
        self.paused = True
        self.calls.append("pause")

    def resume(self) -> None:
        self.paused = False
        self.calls.append("resume")

    def texts(self) -> list[str]:
        return [line.text for line in self.submitted]


@pytest.fixture
def delivery() -> RecordingDelivery:
    return RecordingDelivery()
