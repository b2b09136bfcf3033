"""Watches survive API-server restarts and expired resource versions without losing or
repeating a line. These tests restart the shared test bed's API server."""

from __future__ import annotations

import os
import signal
import uuid

import pytest

from tests.integration.harness import wait_for
from tests.support.objects import event, pod

pytestmark = pytest.mark.usefixtures("restore_apiserver")


@pytest.fixture
def restore_apiserver(cluster):
    yield
    if getattr(cluster, "current_extra_args", None):
        cluster.restart_apiserver()


def test_watch_survives_an_api_server_restart(cluster, namespace, objects, fake_coder, start_controller):
    token = str(uuid.uuid4())
    fake_coder.add_agent(token)
    controller = start_controller("-n", namespace)
    p = objects.create(pod("ws-restart", namespace=namespace, token=token))
    objects.create(event(p, type="Normal", reason="Scheduled", message="before restart"))
    wait_for(lambda: len(fake_coder.texts(token)) == 2, what="lines before the restart")

    cluster.restart_apiserver()
    objects.create(event(p, type="Normal", reason="Pulling", message="after restart"))

    texts = wait_for(lambda: len(fake_coder.texts(token)) >= 3 and fake_coder.texts(token), what="line after restart")
    assert texts[2].endswith("after restart")
    wait_for(lambda: controller.metric("coder_logstream_watch_restarts_total") >= 1, what="a counted restart")
    assert len(texts) == 3, texts


def test_expired_resource_version_relists_without_loss_or_repeat(cluster, kube_admin, namespace, objects, fake_coder, start_controller):
    token = str(uuid.uuid4())
    fake_coder.add_agent(token)
    controller = start_controller("-n", namespace)
    p = objects.create(pod("ws-expired", namespace=namespace, token=token))
    first = objects.create(event(p, reason="FailedMount", message="volume not ready"))
    wait_for(lambda: len(fake_coder.texts(token)) == 2, what="lines before the gap")

    # Freeze the controller, change things behind its back, and make its resource
    # versions too old: writes elsewhere, an etcd compaction, and an API server that
    # serves watches from etcd so the old version answers 410.
    os.kill(controller.pid, signal.SIGSTOP)
    try:
        objects.patch(first, {"count": 2})
        objects.create(event(p, type="Normal", reason="Pulling", message="during the gap"))
        for _ in range(3):
            kube_admin.create(f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"generateName": "bump-"}})
        cluster.compact_etcd()
        cluster.restart_apiserver(["--watch-cache=false"])
    finally:
        os.kill(controller.pid, signal.SIGCONT)

    wait_for(lambda: len(fake_coder.texts(token)) >= 4, what="the gap's lines")
    wait_for(lambda: controller.metric("coder_logstream_watch_restarts_total", cause="expired") >= 1, what="a relist")
    objects.create(event(p, type="Normal", reason="Pulled", message="after the gap"))
    texts = wait_for(lambda: len(fake_coder.texts(token)) >= 5 and fake_coder.texts(token), what="line after the gap")

    assert texts[0] == "Pod ws-expired created"
    assert texts[1].endswith("volume not ready")
    assert sorted(texts[2:4]) == sorted(["Warning FailedMount Pod/ws-expired: volume not ready (x2)",
                                         "Normal Pulling Pod/ws-expired: during the gap"])
    assert texts[4].endswith("after the gap")
    assert len(texts) == 5, texts
