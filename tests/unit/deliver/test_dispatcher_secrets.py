"""A token never appears in logs, exceptions, reprs or metrics, even in a failing run."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest
from prometheus_client import generate_latest

from logstream.deliver.coder import CoderClient
from logstream.deliver.dispatcher import AgentState, Dispatcher
from logstream.deliver.errors import CoderError
from logstream.deliver.sender import Sender
from logstream.ops.logs import JsonFormatter, TextFormatter
from logstream.ops.metrics import Metrics
from tests.support.fake_coder import FakeCoder

from .conftest import FAST_OPTIONS, new_token
from .helpers import line, numbered, wait_until
from .test_coder_client import closed_port


async def test_token_absent_from_all_output_of_failing_run(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    # Everything at DEBUG, every logger: httpx and httpcore included.
    caplog.set_level(logging.DEBUG)
    rejected, overflowing, provisioning, flaky, unknown = (new_token() for _ in range(5))
    tokens = [rejected, overflowing, provisioning, flaky, unknown]
    texts: list[str] = []

    async with FakeCoder() as coder:
        coder.add_agent(rejected)
        coder.add_agent(overflowing, log_limit_bytes=10)
        coder.add_agent(provisioning, held=True)
        coder.add_agent(flaky)
        coder.inject(status=400, message="Invalid log level provided.", token=rejected, times=1)
        coder.inject(status=500, token=flaky, times=2)
        coder.inject(drop_connection=True, token=flaky, times=2)
        coder.inject(status=429, retry_after="0", token=flaky, times=1)
        async with CoderClient(coder.url, timeout_seconds=2.0, metrics=metrics) as client:
            options = replace(FAST_OPTIONS, unauthorized_window_seconds=0.3)
            dispatcher = Dispatcher(client, options=options, metrics=metrics)
            for token in tokens:
                for item in numbered(token, 3):
                    dispatcher.submit(item)
            await wait_until(lambda: len(coder.lines(flaky)) == 3, what="the flaky agent's lines")
            await wait_until(
                lambda: dispatcher.agent_state(provisioning) is AgentState.UNAUTHORIZED,
                what="giving up on the provisioning agent",
            )
            sender = Sender(
                flaky,
                client=client,
                options=options,
                metrics=metrics,
                sending_enabled=asyncio.Event(),
                on_delivered=lambda lines: None,
                on_fatal=lambda error: None,
                on_finished=lambda sender: None,
            )
            texts += [repr(dispatcher), repr(client), repr(sender)]
            await dispatcher.close()

    # A client aimed at a closed port and a server without the log route fail too.
    async with CoderClient(f"http://127.0.0.1:{closed_port()}", timeout_seconds=1.0) as client:
        try:
            await client.patch_logs(flaky, [line(flaky, "x")])
        except CoderError as error:
            texts.append(str(error))
            texts.append(repr(error))
    async with FakeCoder(serve_log_routes=False) as gone:
        async with CoderClient(gone.url, timeout_seconds=1.0) as client:
            try:
                await client.patch_logs(flaky, [line(flaky, "x")])
            except CoderError as error:
                texts.append(str(error))

    formatted = [TextFormatter().format(r) for r in caplog.records]
    formatted += [JsonFormatter().format(r) for r in caplog.records]
    exposition = generate_latest(metrics.registry).decode()
    assert len(caplog.records) > 10
    for token in tokens:
        assert token not in caplog.text
        assert all(token not in text for text in formatted)
        assert all(token not in text for text in texts)
        assert token not in exposition
