"""401 handling: lines wait while the workspace provisions, then are given up on."""

from __future__ import annotations

import logging

import pytest

from logstream.deliver.coder import LOGS_PATH
from logstream.deliver.dispatcher import AgentState
from logstream.lines import fingerprint
from logstream.ops.metrics import DROP_UNAUTHORIZED, Metrics
from tests.support.fake_coder import FakeCoder

from .conftest import DispatcherFactory, new_token
from .helpers import context, line, numbered, records_at, sample, wait_until


async def test_401_for_a_while_then_delivered_in_order(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token, held=True)
    dispatcher = make_dispatcher(unauthorized_window_seconds=5.0, batch_max_lines=4)

    for item in numbered(token, 10, prefix="early"):
        dispatcher.submit(item)
    await wait_until(
        lambda: len([r for r in coder.requests_for(token=token) if r.status == 401]) >= 3,
        what="three 401 answers",
    )
    for item in numbered(token, 10, prefix="late"):
        dispatcher.submit(item)
    coder.authorize(token)
    await wait_until(lambda: len(coder.lines(token)) == 20, what="20 stored lines")

    expected = [f"early-{i}" for i in range(10)] + [f"late-{i}" for i in range(10)]
    assert coder.texts(token) == expected
    assert dispatcher.agent_state(token) is AgentState.SENDING


async def test_unknown_token_counts_as_provisioning(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    dispatcher = make_dispatcher(unauthorized_window_seconds=5.0)

    dispatcher.submit(line(token, "before the agent exists"))
    await wait_until(lambda: bool(coder.requests_for(token=token)), what="a first request")
    coder.add_agent(token)
    await wait_until(lambda: len(coder.lines(token)) == 1, what="one stored line")

    assert coder.texts(token) == ["before the agent exists"]


async def test_401_past_window_drops_counts_and_logs_once(
    coder: FakeCoder,
    make_dispatcher: DispatcherFactory,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="logstream")
    token = new_token()
    coder.add_agent(token, held=True)
    dispatcher = make_dispatcher(unauthorized_window_seconds=0.5)

    for item in numbered(token, 12):
        dispatcher.submit(item)
    waited = await wait_until(
        lambda: dispatcher.agent_state(token) is AgentState.UNAUTHORIZED, what="giving up"
    )

    assert waited >= 0.5
    assert sample(metrics.registry, "coder_logstream_lines_dropped_total", cause=DROP_UNAUTHORIZED) == 12
    errors = records_at(caplog.records, logging.ERROR)
    assert len(errors) == 1
    assert context(errors[0])["agent"] == fingerprint(token)
    assert context(errors[0])["dropped"] == 12
    assert coder.lines(token) == []


async def test_after_giving_up_later_lines_dropped_without_requests(
    coder: FakeCoder,
    make_dispatcher: DispatcherFactory,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="logstream")
    token = new_token()
    coder.add_agent(token, held=True)
    dispatcher = make_dispatcher(unauthorized_window_seconds=0.3)
    dispatcher.submit(line(token, "first"))
    await wait_until(lambda: dispatcher.agent_state(token) is AgentState.UNAUTHORIZED, what="giving up")
    requests_before = len(coder.requests)

    coder.authorize(token)
    for item in numbered(token, 5):
        dispatcher.submit(item)

    dispatcher.release(token)
    await wait_until(lambda: dispatcher.agent_state(token) is None, what="the sender to end")

    dropped = sample(metrics.registry, "coder_logstream_lines_dropped_total", cause=DROP_UNAUTHORIZED)
    assert dropped == 6
    assert len(records_at(caplog.records, logging.ERROR)) == 1
    assert len(coder.requests) == requests_before


async def test_release_after_giving_up_starts_new_window(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token, held=True)
    dispatcher = make_dispatcher(unauthorized_window_seconds=0.3)
    dispatcher.submit(line(token, "dropped"))
    await wait_until(lambda: dispatcher.agent_state(token) is AgentState.UNAUTHORIZED, what="giving up")

    dispatcher.release(token)
    await wait_until(lambda: dispatcher.agent_state(token) is None, what="the agent forgotten")
    coder.authorize(token)
    dispatcher.submit(line(token, "after re-creation"))
    await wait_until(lambda: len(coder.lines(token)) == 1, what="one stored line")

    assert coder.texts(token) == ["after re-creation"]


async def test_window_counts_from_first_401_of_streak(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token, unauthorized_seconds=0.4)
    dispatcher = make_dispatcher(unauthorized_window_seconds=0.6)

    dispatcher.submit(line(token, "one"))
    await wait_until(lambda: len(coder.lines(token)) == 1, what="first line stored")
    # A new streak of 401s after a success gets a whole window of its own.
    coder.add_agent(token, unauthorized_seconds=0.4)
    dispatcher.submit(line(token, "two"))
    await wait_until(lambda: len(coder.lines(token)) == 2, what="second line stored")

    assert coder.texts(token) == ["one", "two"]
    assert len([r for r in coder.requests_for(token=token, path=LOGS_PATH) if r.status == 401]) >= 2
