"""Dispatcher happy path: order, log source registration, batching, delivery callback."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from logstream.deliver.coder import LOG_SOURCE_ID, LOG_SOURCE_PATH, LOGS_PATH
from logstream.lines import LogLine
from tests.support.fake_coder import FakeCoder

from .conftest import DispatcherFactory, new_token
from .helpers import line, numbered, wait_until


async def test_lines_delivered_in_submit_order(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    dispatcher = make_dispatcher()

    for item in numbered(token, 250):
        dispatcher.submit(item)
    await wait_until(lambda: len(coder.lines(token)) == 250, what="250 stored lines")

    assert coder.texts(token) == [f"line-{i}" for i in range(250)]


async def test_level_and_text_arrive_unchanged(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    dispatcher = make_dispatcher()
    sent = [line(token, "Pulling image \x1b[1mubuntu\x1b[0m")]

    dispatcher.submit(sent[0])
    await wait_until(lambda: len(coder.lines(token)) == 1, what="one stored line")

    (stored,) = coder.lines(token)
    assert stored.output == sent[0].text
    assert stored.level == sent[0].level.value
    assert stored.source_id == LOG_SOURCE_ID


async def test_log_source_registered_once_before_first_patch(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    tokens = [new_token(), new_token()]
    for token in tokens:
        coder.add_agent(token)
    dispatcher = make_dispatcher(batch_max_lines=5)

    for token in tokens:
        for item in numbered(token, 30):
            dispatcher.submit(item)
    await wait_until(
        lambda: all(len(coder.lines(t)) == 30 for t in tokens), what="30 lines per agent"
    )

    for token in tokens:
        paths = [r.path for r in coder.requests_for(token=token)]
        assert paths.count(LOG_SOURCE_PATH) == 1
        assert paths[0] == LOG_SOURCE_PATH
        assert paths.count(LOGS_PATH) >= 6


async def test_many_lines_sent_in_few_requests(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    dispatcher = make_dispatcher(batch_max_lines=50)

    for item in numbered(token, 500):
        dispatcher.submit(item)
    await wait_until(lambda: len(coder.lines(token)) == 500, what="500 stored lines")

    patches = coder.requests_for(token=token, path=LOGS_PATH)
    assert len(patches) == 10
    assert max(r.log_count for r in patches) == 50


async def test_batch_stays_under_byte_cap(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    dispatcher = make_dispatcher(batch_max_bytes=4096)

    for i in range(40):
        dispatcher.submit(line(token, f"{i:03d}" + "y" * 900))
    await wait_until(lambda: len(coder.lines(token)) == 40, what="40 stored lines")

    patches = coder.requests_for(token=token, path=LOGS_PATH)
    assert max(r.body_bytes for r in patches) <= 4096
    assert len(patches) < 40
    assert [t[:3] for t in coder.texts(token)] == [f"{i:03d}" for i in range(40)]


async def test_lines_within_window_share_a_request(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    dispatcher = make_dispatcher(batch_window_seconds=0.3)

    dispatcher.submit(line(token, "first"))
    # The second line comes 0.1 s later, inside the 0.3 s window of the first.
    asyncio.get_running_loop().call_later(0.1, dispatcher.submit, line(token, "second"))
    await wait_until(lambda: len(coder.lines(token)) == 2, what="two stored lines")

    patches = coder.requests_for(token=token, path=LOGS_PATH)
    assert [r.log_count for r in patches] == [2]


async def test_on_delivered_receives_accepted_batches(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    token = new_token()
    coder.add_agent(token)
    delivered: list[LogLine] = []

    def record(lines: Sequence[LogLine]) -> None:
        delivered.extend(lines)

    dispatcher = make_dispatcher(on_delivered=record, batch_max_lines=7)
    sent = [line(token, f"event {i}", signal=f"event/uid-1/{i}") for i in range(20)]
    coder.inject(status=503, times=2, path=LOGS_PATH)

    for item in sent:
        dispatcher.submit(item)
    await wait_until(lambda: len(delivered) == 20, what="20 delivered lines")

    assert delivered == sent
    assert [item.signal for item in delivered] == [f"event/uid-1/{i}" for i in range(20)]
