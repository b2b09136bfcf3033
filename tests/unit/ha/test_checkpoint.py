"""The checkpoint's record of accounted signals: coverage, merging, pruning, size bound."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from logstream.ha.checkpoint import Checkpoint, CheckpointUnreadable, event_of, object_of, uid_digest
from logstream.ha.recorder import DeliveryRecorder
from logstream.lines import AgentToken, Level, LogLine

WRITTEN = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)


def line(signal: str) -> LogLine:
    return LogLine(AgentToken("tok"), Level.INFO, "text", WRITTEN, signal)


@pytest.mark.parametrize(
    ("signal", "uid"),
    [
        ("created/pod-1", "pod-1"),
        ("deleted/pod-1", "pod-1"),
        ("status/pod-1/container/dev/terminated/1/2026-01-01T10:00:00Z", "pod-1"),
        ("claim/pvc-1/Lost/pod-1", "pod-1"),
        ("event/ev-1/3", None),
        ("", None),
    ],
)
def test_signal_ids_name_their_object(signal, uid):
    assert object_of(signal) == uid


def test_event_signals_carry_uid_and_occurrences():
    assert event_of("event/ev-1/12") == ("ev-1", 12)
    assert event_of("event/ev-1/x") is None
    assert event_of("created/pod-1") is None


def test_an_event_is_covered_up_to_the_highest_occurrence_recorded():
    checkpoint = Checkpoint()
    checkpoint.note("event/ev-1/3", now=100)
    checkpoint.note("event/ev-1/2", now=101)  # a late, lower count never lowers it

    assert checkpoint.covers("event/ev-1/1")
    assert checkpoint.covers("event/ev-1/3")
    assert not checkpoint.covers("event/ev-1/4")
    assert not checkpoint.covers("event/ev-2/1")


def test_object_signals_are_covered_one_by_one_and_make_the_object_known():
    checkpoint = Checkpoint()
    checkpoint.note("created/pod-1", now=100)
    checkpoint.note("status/pod-1/container/dev/waiting/ErrImagePull", now=100)

    assert checkpoint.knows_object("pod-1")
    assert not checkpoint.knows_object("pod-2")
    assert checkpoint.covers("created/pod-1")
    assert checkpoint.covers("status/pod-1/container/dev/waiting/ErrImagePull")
    assert not checkpoint.covers("status/pod-1/container/dev/waiting/ImagePullBackOff")
    assert not checkpoint.covers("deleted/pod-1")
    assert not checkpoint.covers("")


def test_encoding_round_trips_without_tokens_or_texts():
    checkpoint = Checkpoint()
    checkpoint.note("created/pod-1", now=100)
    checkpoint.note("event/ev-1/7", now=101)
    checkpoint.note_gone("pod-1", now=102)
    text, evicted = checkpoint.encode(writer="replica-a", now=WRITTEN, max_bytes=10_000)
    back = Checkpoint.decode(text)

    assert evicted == 0
    assert back.writer == "replica-a"
    assert back.written_at == WRITTEN
    assert back.covers("created/pod-1")
    assert back.covers("event/ev-1/7")
    assert back.object_record("pod-1").gone
    assert back.object_record("pod-1").touched == 102
    for secret in ("tok", "text", "pod-1", "ev-1"):
        assert secret not in text


@pytest.mark.parametrize("stored", ["not json", "[]", '{"version": 99}', '{"version": 1, "events": {"e": {"n": 1}}}'])
def test_anything_else_is_unreadable(stored):
    with pytest.raises(CheckpointUnreadable):
        Checkpoint.decode(stored)


def test_merging_keeps_every_delivery_of_both_sides():
    mine, theirs = Checkpoint(), Checkpoint()
    mine.note("event/ev-1/5", now=100)
    mine.note("created/pod-1", now=100)
    theirs.note("event/ev-1/3", now=200)
    theirs.note("event/ev-2/1", now=200)
    theirs.note("status/pod-1/phase/Evicted", now=200)
    theirs.note_gone("pod-1", now=200)
    mine.merge(theirs)

    assert mine.covers("event/ev-1/5")
    assert mine.covers("event/ev-2/1")
    assert mine.covers("created/pod-1")
    assert mine.covers("status/pod-1/phase/Evicted")
    assert mine.object_record("pod-1").gone
    assert mine.object_record("pod-1").touched == 200


def test_pruning_drops_deleted_objects_and_quiet_events_after_the_retention():
    checkpoint = Checkpoint()
    checkpoint.note("created/live", now=0)
    checkpoint.note("created/gone-long-ago", now=0)
    checkpoint.note_gone("gone-long-ago", now=10)
    checkpoint.note("created/gone-just-now", now=0)
    checkpoint.note_gone("gone-just-now", now=95)
    checkpoint.note("event/old/1", now=10)
    checkpoint.note("event/recent/1", now=95)

    assert checkpoint.prune(now=100, retention_seconds=50) == 2
    assert set(checkpoint.objects) == {uid_digest("live"), uid_digest("gone-just-now")}
    assert set(checkpoint.events) == {uid_digest("recent")}


def test_a_checkpoint_over_its_size_evicts_the_oldest_records_deleted_objects_first():
    checkpoint = Checkpoint()
    for i in range(400):
        checkpoint.note(f"created/live-{i:03d}", now=1000 + i)
        checkpoint.note(f"event/ev-{i:03d}/1", now=1000 + i)
    for i in range(400):
        checkpoint.note(f"created/gone-{i:03d}", now=2000 + i)
        checkpoint.note_gone(f"gone-{i:03d}", now=2000 + i)

    text, evicted = checkpoint.encode(writer="a", now=WRITTEN, max_bytes=20_000)

    assert len(text.encode()) <= 20_000
    assert evicted > 0
    kept = json.loads(text)
    assert kept["gone"] == {}  # evicted first
    assert uid_digest("ev-399") in kept["events"]
    assert uid_digest("ev-000") not in kept["events"]  # newest kept
    assert len(kept["objects"]) == 400


def test_the_default_bound_holds_1400_workspaces_with_five_recent_events_each():
    checkpoint = Checkpoint()
    now = int(WRITTEN.timestamp())
    for i in range(1400):
        uid = f"{i:08d}-0000-4000-8000-000000000000"
        checkpoint.note(f"created/{uid}", now=now - 3600)
        checkpoint.note(f"status/{uid}/container/dev/waiting/ImagePullBackOff", now=now - 3600)
        for k in range(5):
            checkpoint.note(f"event/{i:08d}-{k:04d}-4000-8000-000000000000/12", now=now - 3600)
    text, evicted = checkpoint.encode(writer="a", now=WRITTEN, max_bytes=256 * 1024)

    assert evicted == 0
    assert len(text.encode()) <= 256 * 1024


def test_the_recorder_folds_deliveries_and_tracks_what_is_unwritten():
    now = [1000.0]
    recorder = DeliveryRecorder(clock=lambda: now[0])
    assert not recorder.dirty

    recorder.delivered([line("created/pod-1"), line(""), line("event/ev-1/2")])
    recorder.skipped("status/pod-1/phase/Evicted")
    recorder.gone("pod-1")
    assert recorder.dirty
    snapshot = recorder.snapshot(writer="a", max_bytes=10_000, retention_seconds=60)
    recorder.mark_written(snapshot.generation)

    stored = Checkpoint.decode(snapshot.text)
    assert stored.covers("created/pod-1")
    assert stored.covers("event/ev-1/2")
    assert stored.covers("status/pod-1/phase/Evicted")
    assert stored.object_record("pod-1").gone
    assert not recorder.dirty

    other = Checkpoint()
    other.note("event/ev-9/1", now=1000)
    recorder.adopt(other)
    assert recorder.dirty
    assert recorder.checkpoint.covers("event/ev-9/1")
