"""Metric values after a run against the fake Coder."""

from __future__ import annotations

from logstream.deliver.coder import LOGS_PATH
from logstream.ops.metrics import DROP_REJECTED, Metrics
from tests.support.fake_coder import FakeCoder

from .conftest import DispatcherFactory, new_token
from .helpers import numbered, sample, wait_until


async def test_metrics_after_run(
    coder: FakeCoder, make_dispatcher: DispatcherFactory, metrics: Metrics
) -> None:
    registry = metrics.registry
    good, rejected = new_token(), new_token()
    coder.add_agent(good)
    coder.add_agent(rejected)
    coder.inject(status=503, times=1, token=good, path=LOGS_PATH)
    coder.inject(drop_connection=True, times=1, token=good, path=LOGS_PATH)
    coder.inject(status=400, times=1, token=rejected, path=LOGS_PATH)
    dispatcher = make_dispatcher()

    for item in numbered(good, 7) + numbered(rejected, 2):
        dispatcher.submit(item)
    assert sample(registry, "coder_logstream_agents_active") == 2
    assert sample(registry, "coder_logstream_queue_depth") == 9
    # Waiting on the metric, not on the fake: the fake stores lines before responding.
    await wait_until(
        lambda: sample(registry, "coder_logstream_lines_sent_total") == 7, what="seven sent lines"
    )
    await wait_until(
        lambda: sample(registry, "coder_logstream_lines_dropped_total", cause=DROP_REJECTED) == 2,
        what="two rejected lines",
    )

    def requests(method: str, status: str) -> float:
        return sample(registry, "coder_logstream_requests_total", method=method, status=status)

    assert requests("POST", "201") == 2
    assert requests("PATCH", "200") == 1
    assert requests("PATCH", "503") == 1
    assert requests("PATCH", "400") == 1
    assert requests("PATCH", "error") == 1
    assert sample(registry, "coder_logstream_request_duration_seconds_count", method="PATCH") == 4
    assert sample(registry, "coder_logstream_request_duration_seconds_count", method="POST") == 2
    assert len(coder.lines(good)) == 7
    assert sample(registry, "coder_logstream_queue_depth") == 0

    dispatcher.release(good)
    dispatcher.release(rejected)
    await wait_until(
        lambda: sample(registry, "coder_logstream_agents_active") == 0, what="no active agents"
    )
