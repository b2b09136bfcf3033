"""End to end: a Coder that rejects every token for 60 s and fails one request in five.

Every line submitted during those 60 s and after must be stored exactly once, in order.
This test takes about 61 s.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from logstream.deliver.coder import CoderClient
from logstream.deliver.dispatcher import Dispatcher
from logstream.lines import AgentToken
from logstream.ops.metrics import Metrics
from tests.support.fake_coder import FakeCoder

from .conftest import FAST_OPTIONS, new_token
from .helpers import line, sample, wait_until

PROVISIONING_SECONDS = 60.0
LINES_PER_AGENT = 100
LINES_DURING_PROVISIONING = 80


async def submit_paced(
    dispatcher: Dispatcher, tokens: list[AgentToken], *, start: int, stop: int, every: float
) -> None:
    """Submit line `start` .. `stop - 1` for each token, one round every `every` seconds."""
    for i in range(start, stop):
        for token in tokens:
            dispatcher.submit(line(token, f"{token[:8]} line {i}"))
        await asyncio.sleep(every)


async def test_every_line_delivered_once_in_order(
    coder: FakeCoder, metrics: Metrics
) -> None:
    tokens = [new_token() for _ in range(3)]
    for token in tokens:
        coder.add_agent(token, unauthorized_seconds=PROVISIONING_SECONDS)
    coder.inject(status=503, every=5)
    options = replace(FAST_OPTIONS, unauthorized_window_seconds=PROVISIONING_SECONDS + 30)

    async with CoderClient(coder.url, timeout_seconds=5.0, metrics=metrics) as client:
        dispatcher = Dispatcher(client, options=options, metrics=metrics)
        # 80 lines per agent spread over the 60 s of 401s, then 20 more right after.
        await submit_paced(
            dispatcher, tokens, start=0, stop=LINES_DURING_PROVISIONING,
            every=PROVISIONING_SECONDS / LINES_DURING_PROVISIONING,
        )
        await submit_paced(
            dispatcher, tokens, start=LINES_DURING_PROVISIONING, stop=LINES_PER_AGENT, every=0.01
        )
        await wait_until(
            lambda: all(len(coder.lines(t)) >= LINES_PER_AGENT for t in tokens),
            timeout=20.0,
            what="every line stored",
        )
        await dispatcher.close()

    for token in tokens:
        assert coder.texts(token) == [f"{token[:8]} line {i}" for i in range(LINES_PER_AGENT)]
    statuses = [r.status for r in coder.requests]
    assert statuses.count(401) > 10
    assert statuses.count(503) > 10
    assert sample(metrics.registry, "coder_logstream_lines_sent_total") == 3 * LINES_PER_AGENT
    assert sample(metrics.registry, "coder_logstream_queue_depth") == 0
