"""Transient failures: 5xx, dropped connections, timeouts and 429 are retried in order."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from logstream.deliver.coder import LOGS_PATH, CoderClient
from logstream.deliver.dispatcher import Dispatcher
from logstream.ops.metrics import Metrics
from tests.support.fake_coder import FakeCoder

from .conftest import FAST_OPTIONS, DispatcherFactory, new_token
from .helpers import context, numbered, records_at, wait_until


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_retried_until_delivered_in_order(
    coder: FakeCoder, make_dispatcher: DispatcherFactory, status: int
) -> None:
    token = new_token()
    coder.add_agent(token)
    coder.inject(status=status, times=4, path=LOGS_PATH)
    dispatcher = make_dispatcher(batch_max_lines=10)

    for item in numbered(token, 40):
        dispatcher.submit(item)
    await wait_until(lambda: len(coder.lines(token)) == 40, what="40 stored lines")

    assert coder.texts(token) == [f"line-{i}" for i in range(40)]
    statuses = [r.status for r in coder.requests_for(token=token, path=LOGS_PATH)]
    assert statuses.count(status) == 4


async def test_dropped_connections_retried(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    coder.inject(drop_connection=True, every=2, times=5, path=LOGS_PATH)
    dispatcher = make_dispatcher(batch_max_lines=5)

    for item in numbered(token, 30):
        dispatcher.submit(item)
    await wait_until(lambda: len(coder.lines(token)) == 30, what="30 stored lines")

    assert coder.texts(token) == [f"line-{i}" for i in range(30)]
    dropped = [r for r in coder.requests_for(token=token) if r.status is None]
    assert len(dropped) == 5


async def test_timeouts_retried(coder: FakeCoder, metrics: Metrics) -> None:
    token = new_token()
    coder.add_agent(token)
    # The slow answers never store anything, so a retry cannot duplicate lines here.
    coder.inject(delay_seconds=0.5, drop_connection=True, times=2, path=LOGS_PATH)

    async with CoderClient(coder.url, timeout_seconds=0.1, metrics=metrics) as client:
        dispatcher = Dispatcher(client, options=FAST_OPTIONS, metrics=metrics)
        for item in numbered(token, 3):
            dispatcher.submit(item)
        await wait_until(lambda: len(coder.lines(token)) == 3, what="3 stored lines")
        await dispatcher.close()

    assert coder.texts(token) == ["line-0", "line-1", "line-2"]


async def test_retries_have_no_attempt_limit(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    coder.inject(status=503, times=40, path=LOGS_PATH)
    dispatcher = make_dispatcher(retry_max_seconds=0.005)

    for item in numbered(token, 3):
        dispatcher.submit(item)
    await wait_until(lambda: len(coder.lines(token)) == 3, timeout=10, what="3 stored lines")

    assert coder.texts(token) == ["line-0", "line-1", "line-2"]
    assert len(coder.requests_for(token=token, path=LOGS_PATH)) == 41


async def test_retry_logs_attempt_and_delay(
    coder: FakeCoder, make_dispatcher: DispatcherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="logstream")
    token = new_token()
    coder.add_agent(token)
    coder.inject(status=500, times=3, path=LOGS_PATH)
    dispatcher = make_dispatcher()

    dispatcher.submit(numbered(token, 1)[0])
    await wait_until(lambda: len(coder.lines(token)) == 1, what="one stored line")

    warnings = records_at(caplog.records, logging.WARNING)
    # Attempts 1 and 2 are powers of two and logged as warnings; attempt 3 only at debug.
    assert [context(r)["attempt"] for r in warnings] == [1, 2]
    assert all("delay_s" in context(r) for r in warnings)
    assert all("500" in str(context(r)["error"]) for r in warnings)


async def test_429_waits_for_retry_after_seconds(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    coder.inject(status=429, retry_after="1", times=1, path=LOGS_PATH)
    dispatcher = make_dispatcher()

    dispatcher.submit(numbered(token, 1)[0])
    await wait_until(lambda: len(coder.lines(token)) == 1, what="one stored line")

    limited, accepted = coder.requests_for(token=token, path=LOGS_PATH)
    assert limited.status == 429
    assert accepted.status == 200
    # retry_max_seconds is 0.2, so only the header can explain a gap of a second.
    assert accepted.arrived_at - limited.arrived_at >= 1.0


async def test_429_waits_for_retry_after_date(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=2), usegmt=True)
    coder.inject(status=429, retry_after=when, times=1, path=LOGS_PATH)
    dispatcher = make_dispatcher()

    dispatcher.submit(numbered(token, 1)[0])
    await wait_until(lambda: len(coder.lines(token)) == 1, what="one stored line")

    limited, accepted = coder.requests_for(token=token, path=LOGS_PATH)
    # The HTTP date has whole seconds, so "now + 2 s" is between 1 and 2 s away.
    assert accepted.arrived_at - limited.arrived_at >= 0.9
