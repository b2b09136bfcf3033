"""The bounded per-agent queue: the oldest lines go first, a notice takes their place."""

from __future__ import annotations

import logging

import pytest

from logstream.deliver.batching import dropped_notice_text
from logstream.deliver.coder import LOGS_PATH
from logstream.ops.metrics import DROP_BUFFER_FULL, Metrics
from tests.support.fake_coder import FakeCoder

from .conftest import DispatcherFactory, new_token
from .helpers import numbered, records_at, sample, wait_until


async def test_full_queue_drops_oldest_and_delivers_notice(
    coder: FakeCoder,
    make_dispatcher: DispatcherFactory,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="logstream")
    token = new_token()
    coder.add_agent(token, held=True)
    dispatcher = make_dispatcher(queue_max_lines=10, unauthorized_window_seconds=10.0)

    # The first five lines become the batch in flight, retried while the token gets 401.
    for item in numbered(token, 5, prefix="first"):
        dispatcher.submit(item)
    await wait_until(lambda: bool(coder.requests_for(token=token)), what="the first 401")
    for item in numbered(token, 47, prefix="later"):
        dispatcher.submit(item)
    coder.authorize(token)
    await wait_until(lambda: len(coder.lines(token)) == 16, what="16 stored lines")
    # The fake stores the lines before the sender reads the response and counts them.
    await wait_until(
        lambda: sample(metrics.registry, "coder_logstream_queue_depth") == 0, what="an empty queue"
    )

    expected = (
        [f"first-{i}" for i in range(5)]
        + [dropped_notice_text(37)]
        + [f"later-{i}" for i in range(37, 47)]
    )
    assert coder.texts(token) == expected
    assert coder.lines(token)[5].level == "warn"
    assert sample(metrics.registry, "coder_logstream_lines_dropped_total", cause=DROP_BUFFER_FULL) == 37
    assert len(records_at(caplog.records, logging.WARNING)) == 1


async def test_notice_counts_toward_batch_line_cap(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    dispatcher = make_dispatcher(queue_max_lines=10, batch_max_lines=10)

    # Submitted in one go, before the sender runs: 25 lines into room for 10.
    for item in numbered(token, 25):
        dispatcher.submit(item)
    await wait_until(lambda: len(coder.lines(token)) == 11, what="11 stored lines")

    assert coder.texts(token) == [dropped_notice_text(15)] + [f"line-{i}" for i in range(15, 25)]
    assert [r.log_count for r in coder.requests_for(token=token, path=LOGS_PATH)] == [10, 1]
