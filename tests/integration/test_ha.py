"""Several replicas and restarts against the real API server, the real program and the
fake Coder: every signal reaches its agent once, across restarts, upgrades, handovers and
a killed leader.

Each test has its own namespace, which also holds its Lease and checkpoint ConfigMap.
Timings are short (lease 4 s, renew deadline 3 s, retry 0.5 s, checkpoint every 1 s).
`LOGSTREAM_HA_SOAK_SECONDS` sets how long the side-by-side soak runs (60 s by default).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from logstream.ha.checkpoint import DATA_KEY, Checkpoint
from logstream.ha.election import ElectionTiming, LeaderElector
from logstream.ha.lease import KubeLeaseStore, LeaseConflict, LeaseRecord
from logstream.kube.api import KubeApi
from logstream.kube.client import connect
from logstream.ops.metrics import Metrics
from tests.integration.harness import Controller, wait_for
from tests.support.objects import event, pod

LEASE_SECONDS = 4
RENEW_DEADLINE_SECONDS = 3
RETRY_SECONDS = 0.5
CHECKPOINT_SECONDS = 1
SOAK_SECONDS = float(os.environ.get("LOGSTREAM_HA_SOAK_SECONDS", "60"))
LEASE = "logstream-kube"
CHECKPOINT = f"{LEASE}-checkpoint"
WAITING = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}


def ha_args(namespace: str, identity: str) -> list[str]:
    return [
        "-n", namespace,
        "--leader-elect",
        "--leader-election-namespace", namespace,
        "--leader-election-identity", identity,
        "--leader-election-lease-duration-seconds", str(LEASE_SECONDS),
        "--leader-election-renew-deadline-seconds", str(RENEW_DEADLINE_SECONDS),
        "--leader-election-retry-period-seconds", str(RETRY_SECONDS),
        "--checkpoint-interval-seconds", str(CHECKPOINT_SECONDS),
        "--shutdown-timeout-seconds", "5",
    ]


def new_token(fake_coder: Any) -> str:
    token = str(uuid.uuid4())
    fake_coder.add_agent(token)
    return token


def lease_spec(kube_admin: Any, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = kube_admin.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}")["spec"]
    return found


def holder(kube_admin: Any, namespace: str) -> str:
    try:
        return str(lease_spec(kube_admin, namespace).get("holderIdentity") or "")
    except Exception:  # noqa: BLE001 - no Lease yet
        return ""


def wait_leader(controller: Controller, timeout: float = 30.0) -> None:
    wait_for(lambda: controller.metric("coder_logstream_is_leader") == 1, timeout=timeout, what="leadership")


def stored_checkpoint(kube_admin: Any, namespace: str) -> Checkpoint:
    body = kube_admin.get(f"/api/v1/namespaces/{namespace}/configmaps/{CHECKPOINT}")
    return Checkpoint.decode(body["data"][DATA_KEY])


def text(ev: dict[str, Any], count: int = 1) -> str:
    meta = ev["involvedObject"]
    line = f"{ev['type']} {ev['reason']} {meta['kind']}/{meta['name']}: {ev['message']}"
    return line + (f" (x{count})" if count > 1 else "")


def waiting_status(objects: Any, p: dict[str, Any]) -> None:
    status = {"name": "dev", "ready": False, "restartCount": 0, "image": "img", "imageID": "", "state": WAITING}
    objects.patch(p, {"status": {"containerStatuses": [status]}}, subresource="status")


WAITING_LINE = "Container dev is waiting: ImagePullBackOff: Back-off pulling image"


def wait_texts(fake_coder: Any, token: str, expected: list[str], timeout: float = 30.0) -> None:
    """Wait until the agent has at least as many lines as expected, then compare exactly."""
    wait_for(lambda: len(fake_coder.texts(token)) >= len(expected), timeout=timeout,
             what=f"{len(expected)} lines, last {expected[-1]!r}")
    # Anything extra (a repeat) would arrive right behind; give it a moment to show.
    time.sleep(CHECKPOINT_SECONDS)
    assert fake_coder.texts(token) == expected


# The Lease itself ----------------------------------------------------------------------


class Listener:
    def __init__(self) -> None:
        self.changes: list[str] = []

    def started_leading(self) -> None:
        self.changes.append("started")

    def stopped_leading(self) -> None:
        self.changes.append("stopped")


def elector(api: KubeApi, namespace: str, identity: str, listener: Listener) -> LeaderElector:
    return LeaderElector(
        store=KubeLeaseStore(api, namespace=namespace, name=LEASE),
        identity=identity,
        timing=ElectionTiming(lease_duration_seconds=2, renew_deadline_seconds=1.5, retry_period_seconds=0.2),
        listener=listener,
        metrics=Metrics(),
    )


def test_an_update_with_a_stale_resource_version_gets_409(cluster, namespace, kube_admin):
    async def scenario() -> None:
        client = await connect(Path(cluster.admin_kubeconfig))
        try:
            store = KubeLeaseStore(KubeApi(client, request_timeout_seconds=10), namespace=namespace, name=LEASE)
            first = await store.create(LeaseRecord("a", 15, "2026-01-01T10:00:00.000000Z", "2026-01-01T10:00:00.000000Z", 0))
            await store.update(LeaseRecord("a", 15, first.record.acquire_time, "2026-01-01T10:00:02.000000Z", 0),
                               first.resource_version)
            with pytest.raises(LeaseConflict):
                await store.update(LeaseRecord("b", 15, "2026-01-01T10:00:03.000000Z", "2026-01-01T10:00:03.000000Z", 1),
                                   first.resource_version)
            with pytest.raises(LeaseConflict):
                await store.create(LeaseRecord("b", 15, "", "", 0))
        finally:
            await client.close()

    asyncio.run(scenario())
    assert lease_spec(kube_admin, namespace)["holderIdentity"] == "a"


def test_two_electors_one_leader_then_release_and_takeover_counts_a_transition(cluster, namespace, kube_admin):
    async def scenario() -> tuple[Listener, Listener, dict[str, Any], dict[str, Any]]:
        client = await connect(Path(cluster.admin_kubeconfig))
        api = KubeApi(client, request_timeout_seconds=10)
        first, second = Listener(), Listener()
        a, b = elector(api, namespace, "a", first), elector(api, namespace, "b", second)
        try:
            tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
            while not (a.is_leader or b.is_leader):
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.5)  # longer than the lease: the follower must not take it
            assert a.is_leader != b.is_leader
            leader, follower = (a, b) if a.is_leader else (b, a)
            held = lease_spec(kube_admin, namespace)

            leader_task = tasks[0] if leader is a else tasks[1]
            leader_task.cancel()
            await asyncio.gather(leader_task, return_exceptions=True)
            assert await leader.release()
            released = lease_spec(kube_admin, namespace)
            started = time.monotonic()
            while not follower.is_leader:
                await asyncio.sleep(0.02)
            # A released Lease is free at once: no need to wait out the lease duration.
            assert time.monotonic() - started < 1.0
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return first, second, held, released
        finally:
            await client.close()

    first, second, held, released = asyncio.run(scenario())
    # Cancelling the elector ends nothing by itself; release() does.
    assert first.changes == second.changes == ["started"]
    assert held["leaseTransitions"] == 0
    assert held["leaseDurationSeconds"] == 2
    assert held["renewTime"].endswith("Z")
    assert "." in held["renewTime"]
    assert "holderIdentity" not in released
    assert released["leaseDurationSeconds"] == 1
    final = lease_spec(kube_admin, namespace)
    assert final["holderIdentity"] in ("a", "b")
    assert final["holderIdentity"] != held["holderIdentity"]
    assert final["leaseTransitions"] == 1


def test_an_expired_lease_is_taken_only_after_a_full_lease_duration(cluster, namespace, kube_admin):
    kube_admin.create(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", {
        "metadata": {"name": LEASE},
        "spec": {"holderIdentity": "gone", "leaseDurationSeconds": 2, "leaseTransitions": 4,
                 "renewTime": "2020-01-01T00:00:00.000000Z", "acquireTime": "2020-01-01T00:00:00.000000Z"},
    })

    async def scenario() -> float:
        client = await connect(Path(cluster.admin_kubeconfig))
        try:
            b = elector(KubeApi(client, request_timeout_seconds=10), namespace, "b", Listener())
            started = time.monotonic()
            task = asyncio.create_task(b.run())
            while not b.is_leader:
                await asyncio.sleep(0.02)
            took = time.monotonic() - started
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return took
        finally:
            await client.close()

    took = asyncio.run(scenario())
    # An old renewTime counts for nothing: only the local clock since first sight does.
    assert 2.0 <= took < 3.0
    spec = lease_spec(kube_admin, namespace)
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 5


# Restarts, upgrades, handovers ------------------------------------------------------------


def test_graceful_restart_sends_what_happened_while_down_exactly_once(namespace, objects, fake_coder, start_controller):
    token, second_token = new_token(fake_coder), new_token(fake_coder)
    first = start_controller(*ha_args(namespace, "a"))
    wait_leader(first)
    p = objects.create(pod("ws-restart", namespace=namespace, token=token))
    scheduled = objects.create(event(p, type="Normal", reason="Scheduled", message="assigned to node-a", name="a-scheduled"))
    wait_texts(fake_coder, token, ["Pod ws-restart created", text(scheduled)])
    assert first.stop() == 0
    assert holder(objects.admin, namespace) == ""

    # While no controller runs: a repeat, a new event, a status change, a new workspace.
    objects.patch(scheduled, {"count": 2})
    pulling = objects.create(event(p, type="Normal", reason="Pulling", message="pulling dev image", name="b-pulling"))
    waiting_status(objects, p)
    q = objects.create(pod("ws-second", namespace=namespace, token=second_token))
    q_event = objects.create(event(q, type="Normal", reason="Scheduled", message="assigned to node-b", name="c-scheduled"))

    second = start_controller(*ha_args(namespace, "b"))
    wait_leader(second)
    after = objects.create(event(p, type="Normal", reason="Pulled", message="pulled dev image", name="d-pulled"))

    wait_texts(fake_coder, token, [
        "Pod ws-restart created", text(scheduled),
        WAITING_LINE, text(scheduled, 2), text(pulling),
        text(after),
    ])
    wait_texts(fake_coder, second_token, ["Pod ws-second created", text(q_event)])


def test_rolling_upgrade_hands_over_without_loss_or_repeat(namespace, objects, fake_coder, start_controller):
    token = new_token(fake_coder)
    old = start_controller(*ha_args(namespace, "old"))
    wait_leader(old)
    p = objects.create(pod("ws-upgrade", namespace=namespace, token=token))
    first = objects.create(event(p, type="Normal", reason="Scheduled", message="assigned", name="e1"))
    wait_texts(fake_coder, token, ["Pod ws-upgrade created", text(first)])

    new = start_controller(*ha_args(namespace, "new"))
    second = objects.create(event(p, type="Normal", reason="Pulling", message="pulling", name="e2"))
    objects.patch(first, {"count": 2})
    wait_for(lambda: len(fake_coder.texts(token)) == 4, what="lines sent by the old replica")

    # SIGTERM, and changes while the old replica shuts down and the new one takes over.
    during: list[dict[str, Any]] = []

    def change_during_handover() -> None:
        for i in range(8):
            during.append(objects.create(event(p, type="Normal", reason=f"Step{i}", message=f"step {i}", name=f"e3-{i}")))
            time.sleep(0.1)

    changes = threading.Thread(target=change_during_handover)
    changes.start()
    assert old.stop() == 0
    changes.join()
    wait_leader(new)
    last = objects.create(event(p, type="Normal", reason="Started", message="started", name="e4"))

    wait_texts(fake_coder, token, [
        "Pod ws-upgrade created", text(first), text(second), text(first, 2),
        *[text(ev) for ev in during], text(last),
    ])
    assert holder(objects.admin, namespace) == "new"


class CountStream:
    """A background thread raising the counts of a few events, like a crash-looping
    container's BackOff events, until stopped."""

    def __init__(self, objects: Any, p: dict[str, Any], events: int = 3, interval: float = 0.03) -> None:
        self.objects = objects
        self.events = [objects.create(event(p, reason="BackOff", message=f"back-off {i}", name=f"loop-{i}"))
                       for i in range(events)]
        self.counts = [1] * events
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            k = i % len(self.events)
            self.counts[k] += 1
            self.objects.patch(self.events[k], {"count": self.counts[k]})
            i += 1
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def expected(self) -> list[str]:
        return [text(ev, n) for ev, last in zip(self.events, self.counts) for n in range(1, last + 1)]


def per_event_in_order(texts: list[str], stream: CountStream) -> None:
    for ev, last in zip(stream.events, stream.counts):
        mine = [t for t in texts if t.startswith(text(ev).split(" (x")[0])]
        assert mine == [text(ev, n) for n in range(1, last + 1)], mine


def test_graceful_handover_while_lines_stream(namespace, objects, fake_coder, start_controller):
    token = new_token(fake_coder)
    a = start_controller(*ha_args(namespace, "a"))
    wait_leader(a)
    b = start_controller(*ha_args(namespace, "b"))
    p = objects.create(pod("ws-handover", namespace=namespace, token=token))
    stream = CountStream(objects, p)
    stream.start()
    wait_for(lambda: len(fake_coder.texts(token)) > 20, what="streamed lines")

    assert a.stop() == 0
    wait_leader(b)
    time.sleep(1)
    stream.stop()

    expected_count = 1 + len(stream.expected())
    wait_for(lambda: len(fake_coder.texts(token)) >= expected_count, what="every streamed line")
    time.sleep(CHECKPOINT_SECONDS)
    texts = fake_coder.texts(token)
    assert texts[0] == "Pod ws-handover created"
    assert sorted(texts[1:]) == sorted(stream.expected())
    per_event_in_order(texts, stream)


def test_killed_leader_loses_nothing_and_repeats_only_what_followed_its_last_checkpoint(
    namespace, objects, kube_admin, fake_coder, start_controller
):
    token = new_token(fake_coder)
    a = start_controller(*ha_args(namespace, "a"))
    wait_leader(a)
    b = start_controller(*ha_args(namespace, "b"))
    p = objects.create(pod("ws-kill", namespace=namespace, token=token))
    stream = CountStream(objects, p)
    stream.start()
    wait_for(lambda: len(fake_coder.texts(token)) > 30, what="streamed lines")

    killed_at = time.monotonic()
    a.stop(signal.SIGKILL)
    # Read right away: the follower cannot write before it takes over, seconds later.
    last_checkpoint = stored_checkpoint(kube_admin, namespace)
    delivered_by_a = fake_coder.texts(token)
    wait_leader(b, timeout=LEASE_SECONDS + 10)
    takeover = time.monotonic() - killed_at
    time.sleep(2)
    stream.stop()

    expected = ["Pod ws-kill created", *stream.expected()]
    wait_for(lambda: set(fake_coder.texts(token)) >= set(expected), what="every streamed line")
    time.sleep(CHECKPOINT_SECONDS)
    texts = fake_coder.texts(token)
    repeats = collections.Counter(texts) - collections.Counter(set(texts))
    uncovered = [t for t in delivered_by_a if not covered(last_checkpoint, stream, t)]
    print(f"\nHA SIGKILL: takeover after {takeover:.2f} s (lease {LEASE_SECONDS} s); "
          f"{len(texts)} lines, {sum(repeats.values())} repeated; {len(uncovered)} lines were "
          f"delivered after the leader's last checkpoint write")

    assert set(texts) == set(expected)  # nothing lost, nothing foreign
    assert set(repeats) <= set(uncovered)  # repeats only of lines the checkpoint missed
    assert sum(repeats.values()) <= len(uncovered)
    per_event_in_order(list(dict.fromkeys(texts)), stream)
    assert takeover < LEASE_SECONDS + 2


def covered(checkpoint: Checkpoint, stream: CountStream, line: str) -> bool:
    for ev in stream.events:
        base = text(ev)
        if line == base or line.startswith(base + " (x"):
            count = int(line.rsplit("(x", 1)[1].rstrip(")")) if line != base else 1
            return checkpoint.covers(f"event/{ev['metadata']['uid']}/{count}")
    return True  # the created line: long covered


def test_two_replicas_side_by_side_through_workspace_churn(namespace, objects, fake_coder, start_controller):
    a = start_controller(*ha_args(namespace, "a"))
    b = start_controller(*ha_args(namespace, "b"))
    wait_for(lambda: a.metric("coder_logstream_is_leader") + b.metric("coder_logstream_is_leader") == 1,
             what="one leader")
    expected: dict[str, list[str]] = {}
    alive: list[tuple[dict[str, Any], str]] = []
    deadline = time.monotonic() + SOAK_SECONDS
    n = 0
    while time.monotonic() < deadline:
        n += 1
        token = new_token(fake_coder)
        name = f"ws-churn-{n}"
        p = objects.create(pod(name, namespace=namespace, token=token))
        ev = objects.create(event(p, type="Normal", reason="Scheduled", message=f"assigned {n}", name=f"{name}.a"))
        expected[token] = [f"Pod {name} created", text(ev)]
        for count in (2, 3):
            objects.patch(ev, {"count": count})
            expected[token].append(text(ev, count))
        if n % 3 == 0:
            waiting_status(objects, p)
            expected[token].append(WAITING_LINE)
        alive.append((p, token))
        if len(alive) > 4:
            gone, gone_token = alive.pop(0)
            objects.delete(gone)
            expected[gone_token].append(f"Pod {gone['metadata']['name']} deleted")
        time.sleep(0.2)

    # An agent's lines come from two watches (pods and events), so their order may
    # interleave. Only the first line (created) and the last (deleted) have a fixed place.
    def mismatched() -> dict[str, tuple[list[str], list[str]]]:
        found = {}
        for token, lines in expected.items():
            texts = fake_coder.texts(token)
            if sorted(texts) != sorted(lines):
                missing = list((collections.Counter(lines) - collections.Counter(texts)).elements())
                extra = list((collections.Counter(texts) - collections.Counter(lines)).elements())
                found[lines[0]] = (missing, extra)
        return found

    settle = time.monotonic() + 60
    while (wrong := mismatched()) and time.monotonic() < settle:
        time.sleep(0.5)
    assert not wrong, (
        f"{len(wrong)} agents with missing or extra lines (first line: (missing, extra)): "
        f"{dict(list(wrong.items())[:5])}; logs: {a.log_path}, {b.log_path}"
    )
    time.sleep(2 * CHECKPOINT_SECONDS)
    repeats = sum(len(fake_coder.texts(t)) - len(set(fake_coder.texts(t))) for t in expected)
    lines = sum(len(v) for v in expected.values())
    print(f"\nHA soak: {SOAK_SECONDS:.0f} s, {n} workspaces, {lines} lines, {repeats} repeated, "
          f"leader transitions a={a.metric('coder_logstream_leader_transitions_total'):.0f} "
          f"b={b.metric('coder_logstream_leader_transitions_total'):.0f}")
    for token, lines in expected.items():
        texts = fake_coder.texts(token)
        assert sorted(texts) == sorted(lines)
        assert texts[0] == lines[0]
        if lines[-1].endswith(" deleted"):
            assert texts[-1] == lines[-1]
    assert repeats == 0
    assert a.metric("coder_logstream_leader_transitions_total") + b.metric("coder_logstream_leader_transitions_total") == 1
