"""Responses that must not be retried: 413 ends the agent, 400 drops one batch."""

from __future__ import annotations

import logging

import pytest

from logstream.deliver.coder import LOGS_PATH
from logstream.deliver.dispatcher import AgentState
from logstream.lines import fingerprint
from logstream.ops.metrics import DROP_OVERFLOW, DROP_REJECTED, Metrics
from tests.support.fake_coder import FakeCoder

from .conftest import DispatcherFactory, new_token
from .helpers import context, line, numbered, records_at, sample, wait_until


async def test_413_drops_batch_and_stops_sending(
    coder: FakeCoder,
    make_dispatcher: DispatcherFactory,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="logstream")
    token = new_token()
    coder.add_agent(token, log_limit_bytes=1000)
    dispatcher = make_dispatcher()

    dispatcher.submit(line(token, "fits"))
    await wait_until(lambda: len(coder.lines(token)) == 1, what="the first line stored")
    dispatcher.submit(line(token, "z" * 1000))
    await wait_until(lambda: dispatcher.agent_state(token) is AgentState.OVERFLOWED, what="overflow")
    for item in numbered(token, 4):
        dispatcher.submit(item)
    dispatcher.release(token)
    await wait_until(lambda: dispatcher.agent_state(token) is None, what="the sender to end")

    assert coder.texts(token) == ["fits"]
    assert coder.overflowed(token)
    statuses = [r.status for r in coder.requests_for(token=token, path=LOGS_PATH)]
    assert statuses == [200, 413]
    assert sample(metrics.registry, "coder_logstream_lines_dropped_total", cause=DROP_OVERFLOW) == 5
    errors = records_at(caplog.records, logging.ERROR)
    assert len(errors) == 1
    assert context(errors[0])["agent"] == fingerprint(token)
    assert context(errors[0])["status"] == 413


async def test_400_drops_only_that_batch_and_logs_body(
    coder: FakeCoder,
    make_dispatcher: DispatcherFactory,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="logstream")
    token = new_token()
    coder.add_agent(token)
    coder.inject(status=400, message="Invalid log level provided.", times=1, path=LOGS_PATH)
    dispatcher = make_dispatcher()

    for item in numbered(token, 3, prefix="bad"):
        dispatcher.submit(item)
    await wait_until(
        lambda: sample(metrics.registry, "coder_logstream_lines_dropped_total", cause=DROP_REJECTED) == 3,
        what="three rejected lines",
    )
    dispatcher.submit(line(token, "good"))
    await wait_until(lambda: len(coder.lines(token)) == 1, what="the next line stored")

    statuses = [r.status for r in coder.requests_for(token=token, path=LOGS_PATH)]
    assert statuses == [400, 200]
    assert coder.texts(token) == ["good"]
    errors = records_at(caplog.records, logging.ERROR)
    assert len(errors) == 1
    assert context(errors[0])["message"] == "Invalid log level provided."
    assert context(errors[0])["lines"] == 3
    assert dispatcher.agent_state(token) is AgentState.SENDING


async def test_400_on_log_source_drops_batch(
    coder: FakeCoder, make_dispatcher: DispatcherFactory, metrics: Metrics
) -> None:
    token = new_token()
    coder.add_agent(token)
    coder.inject(status=400, times=1, method="POST")
    dispatcher = make_dispatcher()

    dispatcher.submit(line(token, "lost"))
    await wait_until(
        lambda: sample(metrics.registry, "coder_logstream_lines_dropped_total", cause=DROP_REJECTED) == 1,
        what="one rejected line",
    )
    dispatcher.submit(line(token, "kept"))
    await wait_until(lambda: len(coder.lines(token)) == 1, what="one stored line")

    assert coder.texts(token) == ["kept"]
    assert [r.status for r in coder.requests_for(token=token, method="POST")] == [400, 201]
