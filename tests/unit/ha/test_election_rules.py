"""The election's timing rules, on an in-memory Lease and real (short) time.

The Lease's own behaviour (409 on a stale update, release, transitions in the stored
object) is tested against the real API server in tests/integration/test_ha.py.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from logstream.ha.election import (
    ElectionTiming,
    LeaderElector,
    LeaseObserver,
    next_record,
    released_record,
)
from logstream.ha.lease import LeaseRecord, micro_time
from logstream.ops.metrics import Metrics

TIMING = ElectionTiming(lease_duration_seconds=1, renew_deadline_seconds=0.6, retry_period_seconds=0.1)
NOW = datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)


class Listener:
    def __init__(self) -> None:
        self.changes: list[tuple[str, float]] = []

    def started_leading(self) -> None:
        self.changes.append(("started", time.monotonic()))

    def stopped_leading(self) -> None:
        self.changes.append(("stopped", time.monotonic()))


def make_elector(store, identity="b", listener=None, metrics=None):
    return LeaderElector(
        store=store, identity=identity, timing=TIMING, listener=listener or Listener(), metrics=metrics or Metrics()
    )


async def until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def stop(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def held_by(holder: str, transitions: int = 0, renew: str = "2026-01-01T10:00:00.000000Z") -> LeaseRecord:
    return LeaseRecord(holder, 1, renew, renew, transitions)


# Pure rules ------------------------------------------------------------------------------


def test_micro_time_is_rfc3339_utc_with_microseconds():
    from datetime import timedelta

    assert micro_time(NOW) == "2026-01-01T10:00:00.123456Z"
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    assert micro_time(plus_two) == "2026-01-01T10:00:00.123456Z"


def test_a_follower_waits_a_full_lease_duration_from_first_sight_on_its_own_clock():
    observer = LeaseObserver()
    # The renewTime written by the holder is years old: it does not matter.
    observer.observe(held_by("a", renew="2020-01-01T00:00:00.000000Z"), now=100.0)

    assert observer.held_by_another("b", now=100.0)
    assert observer.held_by_another("b", now=100.99)
    assert not observer.held_by_another("b", now=101.0)


def test_any_change_of_the_record_restarts_the_wait():
    observer = LeaseObserver()
    observer.observe(held_by("a"), now=100.0)
    observer.observe(held_by("a"), now=100.8)  # unchanged: the timer keeps running
    observer.observe(held_by("a", renew="2026-01-01T10:00:02.000000Z"), now=100.9)

    assert observer.held_by_another("b", now=101.5)
    assert not observer.held_by_another("b", now=101.9)


def test_an_empty_holder_or_our_own_name_is_never_held_by_another():
    observer = LeaseObserver()
    observer.observe(held_by(""), now=100.0)
    assert not observer.held_by_another("b", now=100.0)
    observer.observe(held_by("b"), now=100.0)
    assert not observer.held_by_another("b", now=100.0)


def test_transitions_grow_on_a_holder_change_and_not_on_a_renewal():
    first = next_record(None, identity="a", duration_seconds=15, now=NOW)
    assert (first.holder, first.transitions, first.acquire_time) == ("a", 0, micro_time(NOW))

    later = NOW.replace(second=2)
    renewed = next_record(first, identity="a", duration_seconds=15, now=later)
    assert (renewed.transitions, renewed.acquire_time, renewed.renew_time) == (0, first.acquire_time, micro_time(later))

    taken = next_record(renewed, identity="b", duration_seconds=15, now=later)
    assert (taken.holder, taken.transitions, taken.acquire_time) == ("b", 1, micro_time(later))

    released = released_record(taken, now=later)
    assert (released.holder, released.duration_seconds, released.transitions) == ("", 1, 1)
    after_release = next_record(released, identity="a", duration_seconds=15, now=later)
    assert after_release.transitions == 2


# The elector's loop ------------------------------------------------------------------


async def test_a_missing_lease_is_created_and_held(lease_store):
    metrics = Metrics()
    elector = make_elector(lease_store, identity="a", metrics=metrics)
    task = asyncio.create_task(elector.run())
    await until(lambda: elector.is_leader)
    await stop(task)

    assert lease_store.stored.record.holder == "a"
    assert metrics.is_leader._value.get() == 1
    assert metrics.leader_transitions._value.get() == 1


async def test_a_follower_takes_an_abandoned_lease_after_one_lease_duration(lease_store):
    lease_store.put(held_by("a"))
    elector = make_elector(lease_store)
    started = time.monotonic()
    task = asyncio.create_task(elector.run())
    await until(lambda: elector.is_leader)
    took = time.monotonic() - started
    await stop(task)

    assert TIMING.lease_duration_seconds <= took < TIMING.lease_duration_seconds + 2 * TIMING.retry_period_seconds
    assert lease_store.stored.record.transitions == 1


async def test_a_holder_that_keeps_renewing_keeps_the_follower_out(lease_store):
    lease_store.put(held_by("a"))
    elector = make_elector(lease_store)
    task = asyncio.create_task(elector.run())
    for i in range(25):  # 2.5 lease durations of renewals every 0.1 s
        await asyncio.sleep(0.1)
        lease_store.put(held_by("a", renew=f"2026-01-01T10:00:{i:02d}.000000Z"))
        assert not elector.is_leader
    await stop(task)


async def test_a_released_lease_is_taken_at_once(lease_store):
    lease_store.put(released_record(held_by("a", transitions=3), now=NOW))
    elector = make_elector(lease_store)
    started = time.monotonic()
    task = asyncio.create_task(elector.run())
    await until(lambda: elector.is_leader)
    took = time.monotonic() - started
    await stop(task)

    assert took < TIMING.retry_period_seconds
    assert lease_store.stored.record.transitions == 4


async def test_a_leader_that_cannot_renew_stops_before_the_lease_could_be_taken(lease_store):
    listener = Listener()
    elector = make_elector(lease_store, identity="a", listener=listener)
    task = asyncio.create_task(elector.run())
    await until(lambda: elector.is_leader)
    lease_store.hanging = True  # partitioned: requests neither return nor fail
    last_renewal = time.monotonic()
    await until(lambda: not elector.is_leader)
    await stop(task)

    stopped_at = listener.changes[-1][1]
    assert listener.changes[-1][0] == "stopped"
    # The last successful renewal was sent at most one retry period before the partition.
    assert stopped_at - last_renewal <= TIMING.renew_deadline_seconds + 0.05
    assert stopped_at - (last_renewal - TIMING.retry_period_seconds) < TIMING.lease_duration_seconds


async def test_a_leader_that_sees_another_holder_stops_at_once(lease_store):
    listener = Listener()
    elector = make_elector(lease_store, identity="a", listener=listener)
    task = asyncio.create_task(elector.run())
    await until(lambda: elector.is_leader)
    taken_at = time.monotonic()
    lease_store.put(held_by("b", transitions=1))
    await until(lambda: not elector.is_leader)
    await stop(task)

    assert listener.changes[-1][1] - taken_at < 2 * TIMING.retry_period_seconds


async def test_errors_while_following_are_retried_and_never_end_the_task(lease_store):
    lease_store.failing = True
    elector = make_elector(lease_store)
    task = asyncio.create_task(elector.run())
    await asyncio.sleep(0.5)
    assert not task.done()
    assert not elector.is_leader
    lease_store.failing = False
    await until(lambda: elector.is_leader)
    await stop(task)


async def test_release_empties_the_holder_and_is_done_once(lease_store):
    elector = make_elector(lease_store, identity="a")
    task = asyncio.create_task(elector.run())
    await until(lambda: elector.is_leader)
    await stop(task)

    assert await elector.release()
    record = lease_store.stored.record
    assert (record.holder, record.duration_seconds) == ("", 1)
    assert not await elector.release()


async def test_release_leaves_a_lease_that_another_replica_took(lease_store):
    elector = make_elector(lease_store, identity="a")
    task = asyncio.create_task(elector.run())
    await until(lambda: elector.is_leader)
    await stop(task)
    lease_store.put(held_by("b", transitions=1))

    assert not await elector.release()
    assert lease_store.stored.record.holder == "b"
