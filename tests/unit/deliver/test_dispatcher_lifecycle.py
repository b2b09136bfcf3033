"""Release, pause and resume, ordered shutdown, and the fatal missing-route error."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from logstream.deliver.coder import LOGS_PATH, CoderClient
from logstream.deliver.dispatcher import Dispatcher
from logstream.deliver.errors import CoderRouteNotFound
from logstream.ops.metrics import DROP_SHUTDOWN, Metrics
from tests.support.fake_coder import FakeCoder

from .conftest import FAST_OPTIONS, DispatcherFactory, new_token
from .helpers import line, numbered, records_at, sample, wait_until


async def test_release_flushes_then_forgets(
    coder: FakeCoder, make_dispatcher: DispatcherFactory, metrics: Metrics
) -> None:
    token = new_token()
    coder.add_agent(token)
    # A window far longer than the wait below: only release() can send the lines in time.
    dispatcher = make_dispatcher(batch_window_seconds=10.0)

    for item in numbered(token, 3):
        dispatcher.submit(item)
    assert sample(metrics.registry, "coder_logstream_agents_active") == 1
    dispatcher.release(token)
    await wait_until(lambda: dispatcher.agent_state(token) is None, timeout=2.0, what="forgotten")

    assert coder.texts(token) == ["line-0", "line-1", "line-2"]
    assert sample(metrics.registry, "coder_logstream_agents_active") == 0


async def test_line_after_release_keeps_agent(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token, held=True)
    dispatcher = make_dispatcher(unauthorized_window_seconds=10.0)

    dispatcher.submit(line(token, "old pod"))
    await wait_until(lambda: bool(coder.requests_for(token=token)), what="the first 401")
    dispatcher.release(token)
    dispatcher.submit(line(token, "new pod"))
    coder.authorize(token)
    await wait_until(lambda: len(coder.lines(token)) == 2, what="two stored lines")

    assert coder.texts(token) == ["old pod", "new pod"]
    assert dispatcher.agent_state(token) is not None


async def test_close_flushes_queues_before_returning(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    tokens = [new_token() for _ in range(3)]
    for token in tokens:
        coder.add_agent(token)
    dispatcher = make_dispatcher(batch_window_seconds=10.0, shutdown_timeout_seconds=5.0)
    for token in tokens:
        for item in numbered(token, 20):
            dispatcher.submit(item)

    started = time.monotonic()
    await dispatcher.close()

    assert time.monotonic() - started < 1.0
    for token in tokens:
        assert coder.texts(token) == [f"line-{i}" for i in range(20)]


async def test_close_counts_lines_left_at_deadline(
    coder: FakeCoder,
    make_dispatcher: DispatcherFactory,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="logstream")
    stuck, healthy = new_token(), new_token()
    coder.add_agent(stuck, held=True)
    coder.add_agent(healthy)
    dispatcher = make_dispatcher(unauthorized_window_seconds=30.0, shutdown_timeout_seconds=0.3)
    for item in numbered(stuck, 6):
        dispatcher.submit(item)
    for item in numbered(healthy, 4):
        dispatcher.submit(item)

    started = time.monotonic()
    await dispatcher.close()
    took = time.monotonic() - started

    assert 0.3 <= took < 1.0
    assert coder.texts(healthy) == ["line-0", "line-1", "line-2", "line-3"]
    assert sample(metrics.registry, "coder_logstream_lines_dropped_total", cause=DROP_SHUTDOWN) == 6
    assert sample(metrics.registry, "coder_logstream_queue_depth") == 0
    assert sample(metrics.registry, "coder_logstream_agents_active") == 0
    warnings = [r for r in records_at(caplog.records, logging.WARNING) if "shutdown" in r.getMessage()]
    assert len(warnings) == 1


async def test_close_twice_is_harmless(
    coder: FakeCoder, make_dispatcher: DispatcherFactory, metrics: Metrics
) -> None:
    token = new_token()
    coder.add_agent(token)
    dispatcher = make_dispatcher()
    dispatcher.submit(line(token, "before close"))

    await asyncio.gather(dispatcher.close(), dispatcher.close())
    await dispatcher.close()
    dispatcher.submit(line(token, "after close"))

    assert coder.texts(token) == ["before close"]
    assert sample(metrics.registry, "coder_logstream_lines_dropped_total", cause=DROP_SHUTDOWN) == 1
    await dispatcher.wait_until_failed()


async def test_pause_holds_lines_and_resume_sends(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    dispatcher = make_dispatcher(sending_enabled=False)

    for item in numbered(token, 5):
        dispatcher.submit(item)
    # Absence cannot be waited for: give the sender ten batch windows to misbehave.
    await asyncio.sleep(0.2)
    assert coder.requests == []
    assert not dispatcher.sending_enabled

    dispatcher.resume()
    await wait_until(lambda: len(coder.lines(token)) == 5, what="five stored lines")
    requests_before_pause = len(coder.requests)
    dispatcher.pause()
    for item in numbered(token, 3, prefix="paused"):
        dispatcher.submit(item)
    await asyncio.sleep(0.2)
    assert len(coder.requests) == requests_before_pause
    dispatcher.resume()
    await wait_until(lambda: len(coder.lines(token)) == 8, what="eight stored lines")

    assert coder.texts(token) == [f"line-{i}" for i in range(5)] + [f"paused-{i}" for i in range(3)]


async def test_pause_holds_batch_between_retries(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    # Retry-After keeps the retry well after pause() below.
    coder.inject(status=503, retry_after="0.3", times=1, path=LOGS_PATH)
    dispatcher = make_dispatcher()

    dispatcher.submit(line(token, "held"))
    await wait_until(lambda: bool(coder.requests_for(path=LOGS_PATH)), what="the 503")
    dispatcher.pause()
    await asyncio.sleep(0.5)
    assert len(coder.requests_for(path=LOGS_PATH)) == 1

    dispatcher.resume()
    await wait_until(lambda: len(coder.lines(token)) == 1, what="the stored line")


async def test_close_while_paused_returns_at_once(
    coder: FakeCoder, make_dispatcher: DispatcherFactory, metrics: Metrics
) -> None:
    token = new_token()
    coder.add_agent(token)
    dispatcher = make_dispatcher(sending_enabled=False, shutdown_timeout_seconds=5.0)
    for item in numbered(token, 4):
        dispatcher.submit(item)

    started = time.monotonic()
    await dispatcher.close()

    assert time.monotonic() - started < 0.5
    assert coder.requests == []
    assert sample(metrics.registry, "coder_logstream_lines_dropped_total", cause=DROP_SHUTDOWN) == 4


async def test_missing_logs_route_stops_delivery_loudly(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="logstream")
    tokens = [new_token(), new_token()]
    async with FakeCoder(version="v2.99.0+gone", serve_log_routes=False) as coder:
        for token in tokens:
            coder.add_agent(token)
        async with CoderClient(coder.url, timeout_seconds=5.0, metrics=metrics) as client:
            dispatcher = Dispatcher(client, options=FAST_OPTIONS, metrics=metrics)
            dispatcher.submit(line(tokens[0], "first"))

            with pytest.raises(CoderRouteNotFound, match="v2.99.0"):
                await asyncio.wait_for(dispatcher.wait_until_failed(), timeout=5.0)
            requests_after_failure = len(coder.requests)
            dispatcher.submit(line(tokens[1], "second"))
            await asyncio.sleep(0.1)
            await dispatcher.close()

    assert len(coder.requests) == requests_after_failure
    critical = records_at(caplog.records, logging.CRITICAL)
    assert len(critical) == 1
    assert "v2.99.0+gone" in critical[0].getMessage()
    assert not dispatcher.sending_enabled
