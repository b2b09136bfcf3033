"""The watch loop against the real API server: paginated lists and dead connections."""

from __future__ import annotations

import os
import signal
import uuid

import httpx
import pytest

from tests.integration.harness import wait_for
from tests.support.objects import event, pod


def test_paginated_startup_list_indexes_every_pod(namespace, objects, fake_coder, start_controller):
    tokens = [str(uuid.uuid4()) for _ in range(7)]
    pods = []
    for number, token in enumerate(tokens):
        fake_coder.add_agent(token)
        pods.append(objects.create(pod(f"ws-{number}", namespace=namespace, token=token)))
    start_controller("-n", namespace, "--list-page-size", "2")

    for p in pods:
        objects.create(event(p, type="Normal", reason="Scheduled", message="assigned"))
    for number, token in enumerate(tokens):
        wait_for(lambda: fake_coder.texts(token) == [f"Normal Scheduled Pod/ws-{number}: assigned"], what=f"ws-{number}")


def test_silent_connection_is_dropped_and_the_watch_resumes(cluster, namespace, objects, fake_coder, start_controller):
    pid = getattr(cluster, "apiserver_pid", None)
    if pid is None:
        pytest.skip("needs the local test bed to pause the API server")
    token = str(uuid.uuid4())
    fake_coder.add_agent(token)
    controller = start_controller("-n", namespace, "--watch-read-timeout-seconds", "2")
    p = objects.create(pod("ws-silent", namespace=namespace, token=token))
    wait_for(lambda: fake_coder.texts(token) == ["Pod ws-silent created"], what="created line")

    # A paused API server keeps its sockets open but sends nothing: a dead peer.
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: controller.metric("coder_logstream_watch_restarts_total", cause="error") >= 1,
                 timeout=30, what="a read timeout")
    finally:
        os.kill(pid, signal.SIGCONT)
    objects.create(event(p, type="Normal", reason="Pulled", message="after the pause"))

    wait_for(lambda: fake_coder.texts(token)[-1:] == ["Normal Pulled Pod/ws-silent: after the pause"], what="line after pause")
    # First the silence is seen (idle), then reopening fails while the server is paused.
    assert controller.metric("coder_logstream_watch_restarts_total", cause="idle") >= 1
    assert "watch sent nothing for the read timeout" in controller.log_text()
    assert "watch failed" in controller.log_text()


def test_quiet_watch_is_reopened_without_a_warning(namespace, start_controller):
    # No ReplicaSet, StatefulSet, Job or claim exists here, so those watches stay silent.
    controller = start_controller("-n", namespace, "--watch-read-timeout-seconds", "2")

    wait_for(lambda: controller.metric("coder_logstream_watch_restarts_total", resource="jobs", cause="idle") >= 2,
             what="the quiet jobs watch reopened twice")
    assert controller.metric("coder_logstream_watch_restarts_total", cause="error") == 0
    assert "WARNING" not in controller.log_text()


def test_synced_watchers_are_counted_without_a_readiness_probe(namespace, start_controller):
    # Pods, ReplicaSets, StatefulSets, Jobs, claims and events in one namespace.
    controller = start_controller("-n", namespace, wait_ready=False)

    def synced() -> float:
        try:
            return controller.metric("coder_logstream_watchers_synced")
        except httpx.TransportError:
            return -1.0  # the metrics server is not listening yet

    wait_for(lambda: synced() == 6, what="six synced watchers")
