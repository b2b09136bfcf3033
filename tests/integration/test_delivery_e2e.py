"""The whole program against a Coder that rejects new tokens for a minute and fails often."""

from __future__ import annotations

import time
import uuid

from tests.integration.harness import wait_for
from tests.support.objects import event, pod

UNAUTHORIZED_SECONDS = 60
STEPS = 70  # one event per pod per second, so lines arrive before and after the 401 phase


def test_every_line_arrives_once_in_order_through_401s_and_503s(namespace, objects, fake_coder, start_controller):
    tokens = [str(uuid.uuid4()) for _ in range(2)]
    for token in tokens:
        fake_coder.add_agent(token, unauthorized_seconds=UNAUTHORIZED_SECONDS)
        fake_coder.set_faults(status=503, every=5, token=token)
    controller = start_controller("-n", namespace)

    expected: dict[str, list[str]] = {}
    pods = []
    for number, token in enumerate(tokens):
        pods.append(objects.create(pod(f"ws-{number}", namespace=namespace, token=token)))
        expected[token] = [f"Pod ws-{number} created"]
    started = time.monotonic()
    for step in range(STEPS):
        for number, (token, p) in enumerate(zip(tokens, pods)):
            objects.create(event(p, type="Normal", reason="Progress", message=f"step {step}"))
            expected[token].append(f"Normal Progress Pod/ws-{number}: step {step}")
        # Pace the writes at about one per second per pod, measured from the start.
        while time.monotonic() < started + step + 1:
            time.sleep(0.05)

    for token in tokens:
        wait_for(lambda: len(fake_coder.texts(token)) >= len(expected[token]), timeout=90, what="every line")
    for token in tokens:
        assert fake_coder.texts(token) == expected[token]
    assert controller.metric("coder_logstream_requests_total", status="401") > 0
    assert controller.metric("coder_logstream_requests_total", status="503") > 0
    assert controller.metric("coder_logstream_lines_dropped_total") == 0
