"""A restarted controller sends exactly what its checkpoint does not cover.

The correlator is fed first-list changes (`initial=True`) as after a restart; the
baseline built from a checkpoint decides which of their signals are still owed.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from logstream.correlate.correlator import Correlator
from logstream.ha.baseline import CheckpointBaseline
from logstream.ha.checkpoint import Checkpoint
from logstream.ha.recorder import DeliveryRecorder
from logstream.kube.resources import EVENTS, PODS
from logstream.ops.metrics import Metrics
from tests.support.objects import event, pod, with_container_status, with_count
from tests.unit.correlate.conftest import Feed, RecordingSink, SecretStore

WRITTEN = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
WAITING = {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}


def created(obj, when: datetime):
    obj["metadata"]["creationTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return obj


def restarted(checkpoint: Checkpoint | None):
    """A correlator started with `checkpoint`, its sink, feed and recorder."""
    sink, recorder = RecordingSink(), DeliveryRecorder(clock=lambda: WRITTEN.timestamp())
    baseline = CheckpointBaseline(checkpoint, recorder=recorder)
    correlator = Correlator(sink=sink, secrets=SecretStore(), metrics=Metrics(), baseline=baseline)
    return sink, Feed(correlator), recorder


def checkpoint_of(*signals: str) -> Checkpoint:
    checkpoint = Checkpoint(written_at=WRITTEN)
    for signal in signals:
        checkpoint.note(signal, now=int(WRITTEN.timestamp()))
    return checkpoint


@pytest.fixture
def old_pod():
    return created(pod("ws", token="tok"), WRITTEN - timedelta(hours=1))


async def test_without_a_checkpoint_nothing_old_is_sent_and_all_of_it_is_recorded(old_pod):
    ev = event(old_pod, reason="FailedMount", message="m", count=2)
    sink, feed, recorder = restarted(None)
    await feed(PODS, "ADDED", with_container_status(old_pod, waiting=WAITING), initial=True)
    await feed(EVENTS, "ADDED", ev, initial=True)
    assert sink.lines == []

    recorder.fold()
    uid = old_pod["metadata"]["uid"]
    sink, feed, _ = restarted(recorder.checkpoint)
    await feed(PODS, "ADDED", with_container_status(old_pod, waiting=WAITING), initial=True)
    await feed(EVENTS, "ADDED", ev, initial=True)
    assert sink.lines == []
    assert recorder.checkpoint.covers(f"created/{uid}")


async def test_a_known_object_gets_what_happened_while_no_replica_sent(old_pod):
    uid = old_pod["metadata"]["uid"]
    repeated = event(old_pod, reason="BackOff", message="back-off", count=3)
    new = event(old_pod, type="Normal", reason="Pulling", message="pulling")
    checkpoint = checkpoint_of(f"created/{uid}", f"event/{repeated['metadata']['uid']}/1")
    sink, feed, _ = restarted(checkpoint)

    await feed(PODS, "ADDED", with_container_status(old_pod, waiting=WAITING), initial=True)
    await feed(EVENTS, "ADDED", repeated, initial=True)
    await feed(EVENTS, "ADDED", new, initial=True)
    await feed(EVENTS, "MODIFIED", with_count(repeated, 4))

    assert sink.texts("tok") == [
        "Container dev is waiting: ImagePullBackOff: Back-off pulling image",
        "Warning BackOff Pod/ws: back-off (x3)",
        "Normal Pulling Pod/ws: pulling",
        "Warning BackOff Pod/ws: back-off (x4)",
    ]
    assert [line.signal for line in sink.lines][:1] == [f"status/{uid}/container/dev/waiting/ImagePullBackOff"]


async def test_what_the_checkpoint_covers_is_not_sent_again(old_pod):
    uid = old_pod["metadata"]["uid"]
    ev = event(old_pod, reason="BackOff", message="back-off", count=3)
    checkpoint = checkpoint_of(
        f"created/{uid}", f"event/{ev['metadata']['uid']}/3", f"status/{uid}/container/dev/waiting/ImagePullBackOff"
    )
    sink, feed, _ = restarted(checkpoint)
    await feed(PODS, "ADDED", with_container_status(old_pod, waiting=WAITING), initial=True)
    await feed(EVENTS, "ADDED", ev, initial=True)

    assert sink.lines == []


async def test_an_object_created_while_no_replica_sent_is_replayed_whole():
    new_pod = created(pod("ws-new", token="tok"), WRITTEN + timedelta(minutes=5))
    ev = event(new_pod, type="Normal", reason="Scheduled", message="assigned")
    sink, feed, _ = restarted(checkpoint_of("created/another-pod"))
    await feed(PODS, "ADDED", new_pod, initial=True)
    await feed(EVENTS, "ADDED", ev, initial=True)

    assert sink.texts("tok") == ["Pod ws-new created", "Normal Scheduled Pod/ws-new: assigned"]


async def test_an_unknown_object_older_than_the_checkpoint_is_only_indexed(old_pod):
    ev = event(old_pod, reason="FailedMount", message="m")
    sink, feed, recorder = restarted(checkpoint_of("created/another-pod"))
    await feed(PODS, "ADDED", old_pod, initial=True)
    await feed(EVENTS, "ADDED", ev, initial=True)
    await feed(EVENTS, "MODIFIED", with_count(ev, 2))

    assert sink.texts("tok") == ["Warning FailedMount Pod/ws: m (x2)"]
    recorder.fold()
    assert recorder.checkpoint.covers(f"created/{old_pod['metadata']['uid']}")


async def test_an_event_that_repeated_is_sent_even_for_an_object_the_checkpoint_lost(old_pod):
    ev = event(old_pod, reason="BackOff", message="back-off", count=5)
    sink, feed, _ = restarted(checkpoint_of(f"event/{ev['metadata']['uid']}/4"))
    await feed(PODS, "ADDED", old_pod, initial=True)
    await feed(EVENTS, "ADDED", ev, initial=True)

    assert sink.texts("tok") == ["Warning BackOff Pod/ws: back-off (x5)"]


async def test_an_object_that_appeared_after_the_start_owes_its_first_listed_events():
    live = created(pod("ws-live", token="tok"), WRITTEN + timedelta(minutes=5))
    ev = event(live, type="Normal", reason="Scheduled", message="assigned")
    sink, feed, _ = restarted(checkpoint_of("created/another-pod"))
    await feed(PODS, "ADDED", live)  # from the watch, not the first list
    await feed(EVENTS, "ADDED", ev, initial=True)

    assert sink.texts("tok") == ["Pod ws-live created", "Normal Scheduled Pod/ws-live: assigned"]


async def test_a_deleted_object_is_marked_gone_for_pruning(old_pod):
    sink, feed, recorder = restarted(checkpoint_of())
    await feed(PODS, "ADDED", old_pod, initial=True)
    await feed(PODS, "DELETED", old_pod)

    recorder.fold()
    assert sink.texts("tok") == ["Pod ws deleted"]
    assert recorder.checkpoint.object_record(old_pod["metadata"]["uid"]).gone
