"""A correlator wired to an in-memory sink and an in-memory Secret store."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from logstream.correlate.correlator import Correlator
from logstream.kube.resources import Resource
from logstream.kube.watcher import Change, ChangeType, Listed
from logstream.lines import AgentToken, LogLine
from logstream.ops.metrics import Metrics
from tests.support.objects import Obj


@dataclass
class RecordingSink:
    lines: list[LogLine] = field(default_factory=list)
    released: list[AgentToken] = field(default_factory=list)

    def submit(self, line: LogLine) -> None:
        self.lines.append(line)

    def release(self, token: AgentToken) -> None:
        self.released.append(token)

    def texts(self, token: str) -> list[str]:
        return [line.text for line in self.lines if line.token == token]


@dataclass
class SecretStore:
    """Secrets by (namespace, name); names in `forbidden` raise like a 403 would."""

    data: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    forbidden: set[tuple[str, str]] = field(default_factory=set)
    forgotten: list[tuple[str, str]] = field(default_factory=list)

    async def read_key(self, namespace: str, name: str, key: str) -> str | None:
        if (namespace, name) in self.forbidden:
            raise PermissionError(f"secret {namespace}/{name}")
        return self.data.get((namespace, name), {}).get(key)

    def forget(self, namespace: str, name: str) -> None:
        self.forgotten.append((namespace, name))


class Feed:
    """Sends changes to the correlator the way a watcher would."""

    def __init__(self, correlator: Correlator) -> None:
        self.correlator = correlator

    async def __call__(self, resource: Resource, type_: ChangeType, obj: Obj, *, initial: bool = False) -> None:
        await self.correlator.handle(Change(resource, type_, obj, initial))

    async def listed(self, resource: Resource, namespace: str | None, uids: set[str], *, initial: bool) -> None:
        await self.correlator.handle(Listed(resource, namespace, frozenset(uids), initial))


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def secrets() -> SecretStore:
    return SecretStore()


@pytest.fixture
def correlator(sink: RecordingSink, secrets: SecretStore) -> Correlator:
    return Correlator(sink=sink, secrets=secrets, metrics=Metrics())


@pytest.fixture
def feed(correlator: Correlator) -> Feed:
    return Feed(correlator)
