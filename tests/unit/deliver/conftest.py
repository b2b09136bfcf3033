"""Fixtures for delivery tests: a fake Coder on 127.0.0.1, a client, fast dispatchers.

Every test runs against the fake over real HTTP. Options are scaled down (20 ms batch
window, 1 s unauthorized window, 0.2 s retry cap) so that rules about time stay fast.
The autouse fixture fails a test that leaves a task running.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from logstream.deliver.coder import CoderClient
from logstream.deliver.dispatcher import DeliveryOptions, Dispatcher
from logstream.lines import AgentToken
from logstream.ops.metrics import Metrics
from tests.support.fake_coder import FakeCoder
from tests.support.tasks import no_task_left_running  # noqa: F401 (autouse fixture)

FAST_OPTIONS = DeliveryOptions(
    batch_window_seconds=0.02,
    batch_max_lines=100,
    batch_max_bytes=256 * 1024,
    queue_max_lines=5000,
    unauthorized_window_seconds=1.0,
    retry_max_seconds=0.2,
    shutdown_timeout_seconds=2.0,
)

DispatcherFactory = Callable[..., Dispatcher]


def new_token() -> AgentToken:
    """A fresh agent token; Coder tokens are UUIDs."""
    return AgentToken(str(uuid.uuid4()))


@pytest.fixture
async def coder() -> AsyncIterator[FakeCoder]:
    async with FakeCoder() as fake:
        yield fake


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
async def client(coder: FakeCoder, metrics: Metrics) -> AsyncIterator[CoderClient]:
    async with CoderClient(coder.url, timeout_seconds=5.0, metrics=metrics) as coder_client:
        yield coder_client


@pytest.fixture
async def make_dispatcher(
    client: CoderClient, metrics: Metrics
) -> AsyncIterator[DispatcherFactory]:
    """Build dispatchers on the fake with FAST_OPTIONS overridden by keyword; closed after."""
    made: list[Dispatcher] = []

    def make(*, on_delivered: Any = None, sending_enabled: bool = True, **overrides: Any) -> Dispatcher:
        dispatcher = Dispatcher(
            client,
            options=replace(FAST_OPTIONS, **overrides),
            metrics=metrics,
            on_delivered=on_delivered,
            sending_enabled=sending_enabled,
        )
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        await dispatcher.close()
