"""One agent's slow or failing requests never delay another agent's lines."""

from __future__ import annotations

from logstream.deliver.coder import CoderClient
from logstream.deliver.dispatcher import Dispatcher
from logstream.ops.metrics import Metrics
from tests.support.fake_coder import FakeCoder

from .conftest import FAST_OPTIONS, DispatcherFactory, new_token
from .helpers import line, wait_until


async def test_slow_agent_does_not_delay_another(coder: FakeCoder, metrics: Metrics) -> None:
    slow, quick = new_token(), new_token()
    coder.add_agent(slow)
    coder.add_agent(quick)
    coder.inject(delay_seconds=2.0, token=slow)

    async with CoderClient(coder.url, timeout_seconds=10.0, metrics=metrics) as client:
        dispatcher = Dispatcher(client, options=FAST_OPTIONS, metrics=metrics)
        dispatcher.submit(line(slow, "slow-0"))
        await wait_until(lambda: bool(coder.requests_for(token=slow)), what="the slow request")
        for i in range(5):
            dispatcher.submit(line(quick, f"quick-{i}"))
        took = await wait_until(lambda: len(coder.lines(quick)) == 5, what="the quick lines")

        assert took < 0.5
        assert coder.lines(slow) == []
        await dispatcher.close()

    assert coder.texts(slow) == ["slow-0"]


async def test_failing_agent_does_not_delay_another(
    coder: FakeCoder, make_dispatcher: DispatcherFactory
) -> None:
    failing, healthy = new_token(), new_token()
    coder.add_agent(failing)
    coder.add_agent(healthy)
    coder.inject(status=503, token=failing)
    dispatcher = make_dispatcher(shutdown_timeout_seconds=0.1)

    for i in range(20):
        dispatcher.submit(line(failing, f"failing-{i}"))
        dispatcher.submit(line(healthy, f"healthy-{i}"))
    took = await wait_until(lambda: len(coder.lines(healthy)) == 20, what="the healthy lines")

    assert took < 0.5
    assert coder.texts(healthy) == [f"healthy-{i}" for i in range(20)]
    assert coder.lines(failing) == []
