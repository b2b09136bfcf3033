"""Leader election on a Lease: at most one replica sends to Coder at a time.

Rules (the ones client-go follows, implemented here from its documented behaviour):

* A replica takes a Lease held by another only after it has seen no change of the
  Lease's spec for a full `leaseDurationSeconds`, measured on its own monotonic clock
  from the moment it first saw the current spec. Clocks of different machines are never
  compared, so the times written in the Lease are informative only.
* A Lease with an empty holder (released on shutdown) is free at once.
* Every write names the resourceVersion it was computed from. When two replicas try at
  once, the API server rejects one of them with 409, and that one stays a follower.
* `leaseTransitions` grows by one each time the holder changes; `acquireTime` is set
  then, `renewTime` at every renewal.
* The leader renews every retry period. When `renew_deadline` has passed since the
  last renewal request that succeeded was sent, it stops leading, and because
  renew deadline < lease duration that happens before any follower may take over
  (no fencing exists; this margin is the only protection against two senders).
* On shutdown the leader releases the Lease: empty holder, duration 1 s.

`LeaderElector.run()` is one task. It tells a `LeadershipListener` when leadership
starts and ends; `stopped_leading` is called synchronously at the deadline, so the
listener can pause delivery before anything else runs.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from logstream.ha.lease import LeaseConflict, LeaseRecord, LeaseStore, micro_time, utc_now
from logstream.kube.api import KubeError
from logstream.ops.logs import fields
from logstream.ops.metrics import Metrics

log = logging.getLogger("logstream.ha")

# The holder of a released Lease gives its successor this long (the API's minimum).
RELEASED_DURATION_SECONDS = 1


@dataclass(frozen=True, slots=True)
class ElectionTiming:
    """client-go's three durations; `renew_deadline_seconds` < `lease_duration_seconds`."""

    lease_duration_seconds: int
    renew_deadline_seconds: float
    retry_period_seconds: float


class LeadershipListener(Protocol):
    """Told by the elector when this replica starts and stops leading."""

    def started_leading(self) -> None: ...

    def stopped_leading(self) -> None: ...


class Outcome(enum.Enum):
    """Result of one attempt to acquire or renew the Lease."""

    HOLDING = "holding"  # this replica holds the Lease now
    HELD_BY_ANOTHER = "held by another"  # another holder renewed within its lease duration
    CONFLICT = "conflict"  # another replica wrote first (409); try again


class LeaseObserver:
    """When the Lease spec last changed, on this replica's monotonic clock."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.observed_at = 0.0

    def observe(self, record: LeaseRecord, now: float) -> None:
        """Remember `record`; restart the expiry timer only when the spec changed."""
        if record != self.record:
            self.record = record
            self.observed_at = now

    def held_by_another(self, identity: str, now: float) -> bool:
        """True while another holder's lease is unexpired as seen from here."""
        record = self.record
        if record is None or not record.holder or record.holder == identity:
            return False
        return now < self.observed_at + record.duration_seconds


def next_record(
    current: LeaseRecord | None, *, identity: str, duration_seconds: int, now: datetime
) -> LeaseRecord:
    """Build the spec that makes `identity` the holder, a renewal when it is the holder already."""
    stamp = micro_time(now)
    if current is None:
        return LeaseRecord(identity, duration_seconds, stamp, stamp, 0)
    if current.holder == identity:
        return LeaseRecord(identity, duration_seconds, current.acquire_time, stamp, current.transitions)
    return LeaseRecord(identity, duration_seconds, stamp, stamp, current.transitions + 1)


def released_record(current: LeaseRecord, *, now: datetime) -> LeaseRecord:
    """Build the spec a leader writes on shutdown so that a successor may take over at once."""
    stamp = micro_time(now)
    return LeaseRecord("", RELEASED_DURATION_SECONDS, stamp, stamp, current.transitions)


class LeaderElector:
    """Acquires, renews and releases one Lease for one identity."""

    def __init__(
        self,
        *,
        store: LeaseStore,
        identity: str,
        timing: ElectionTiming,
        listener: LeadershipListener,
        metrics: Metrics,
        lease_display: str = "Lease",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self.identity = identity
        self._timing = timing
        self._listener = listener
        self._metrics = metrics
        self._lease_display = lease_display
        self._clock = clock
        self._wall_clock = wall_clock
        self._observer = LeaseObserver()
        self._leading = False
        self._failures = 0

    @property
    def is_leader(self) -> bool:
        return self._leading

    async def run(self) -> None:
        """Acquire, lead until a renewal deadline passes, and start over; until cancelled.

        Cancellation leaves the leadership state as it is: `release()` ends it.
        """
        while True:
            renewed_at = await self._acquire()
            self._start_leading()
            await self._keep_renewing(renewed_at)
            self._stop_leading()

    async def release(self) -> bool:
        """Give the Lease up so a successor takes over at once; True when released.

        Call after the elector's task ended and this replica stopped sending.
        """
        if not self._leading:
            return False
        self._leading = False
        self._metrics.is_leader.set(0)
        timeout = self._timing.renew_deadline_seconds
        try:
            stored = await asyncio.wait_for(self._store.get(), timeout)
            if stored is None or stored.record.holder != self.identity:
                log.info("lease already held by another replica; nothing to release",
                         extra=fields(lease=self._lease_display))
                return False
            released = released_record(stored.record, now=self._wall_clock())
            await asyncio.wait_for(self._store.update(released, stored.resource_version), timeout)
        except (KubeError, LeaseConflict, TimeoutError) as exc:
            log.warning(
                "could not release the lease; a successor takes over once it expires",
                extra=fields(lease=self._lease_display, identity=self.identity, error=repr(exc)),
            )
            return False
        log.info("released the lease", extra=fields(lease=self._lease_display, identity=self.identity))
        return True

    # Acquiring -----------------------------------------------------------------------

    async def _acquire(self) -> float:
        """Try every retry period until this replica holds the Lease; when the winning
        request was sent."""
        while True:
            sent_at = self._clock()
            outcome = await self._try(timeout=self._timing.renew_deadline_seconds)
            if outcome is Outcome.HOLDING:
                return sent_at
            await asyncio.sleep(self._timing.retry_period_seconds)

    async def _keep_renewing(self, renewed_at: float) -> None:
        """Renew every retry period; return when leadership is over."""
        timing = self._timing
        while True:
            await asyncio.sleep(timing.retry_period_seconds)
            while True:
                remaining = renewed_at + timing.renew_deadline_seconds - self._clock()
                if remaining <= 0:
                    log.warning(
                        "could not renew the lease within the renew deadline; stopped sending",
                        extra=fields(
                            lease=self._lease_display,
                            identity=self.identity,
                            renew_deadline_s=timing.renew_deadline_seconds,
                        ),
                    )
                    return
                sent_at = self._clock()
                outcome = await self._try(timeout=remaining)
                if outcome is Outcome.HOLDING:
                    renewed_at = sent_at
                    break
                if outcome is Outcome.HELD_BY_ANOTHER or self._another_holds_it():
                    log.warning(
                        "another replica took the lease; stopped sending",
                        extra=fields(lease=self._lease_display, identity=self.identity,
                                     holder=self._observed_holder()),
                    )
                    return
                # Never sleep past the deadline: stopping on time is the whole point.
                remaining = renewed_at + timing.renew_deadline_seconds - self._clock()
                await asyncio.sleep(min(timing.retry_period_seconds, max(remaining, 0.0)))

    async def _try(self, *, timeout: float) -> Outcome | None:
        """Make one acquire-or-renew attempt; None when the API server did not respond in time."""
        try:
            outcome = await asyncio.wait_for(self._try_acquire_or_renew(), timeout)
        except (KubeError, TimeoutError) as exc:
            self._failures += 1
            # Powers of two only: a long outage logs a few dozen lines, not thousands.
            if self._failures & (self._failures - 1) == 0:
                log.warning(
                    "lease request failed; trying again",
                    extra=fields(lease=self._lease_display, identity=self.identity,
                                 attempt=self._failures, error=str(exc) or repr(exc),
                                 hint=_hint(exc)),
                )
            return None
        self._failures = 0
        return outcome

    async def _try_acquire_or_renew(self) -> Outcome:
        stored = await self._store.get()
        now = self._clock()
        duration = self._timing.lease_duration_seconds
        try:
            if stored is None:
                record = next_record(None, identity=self.identity, duration_seconds=duration,
                                     now=self._wall_clock())
                created = await self._store.create(record)
                self._observer.observe(created.record, self._clock())
                return Outcome.HOLDING

            self._observer.observe(stored.record, now)
            if self._observer.held_by_another(self.identity, now):
                return Outcome.HELD_BY_ANOTHER
            record = next_record(stored.record, identity=self.identity, duration_seconds=duration,
                                 now=self._wall_clock())
            updated = await self._store.update(record, stored.resource_version)
        except LeaseConflict:
            return Outcome.CONFLICT
        self._observer.observe(updated.record, self._clock())
        return Outcome.HOLDING

    # State ---------------------------------------------------------------------------

    def _start_leading(self) -> None:
        self._leading = True
        self._metrics.is_leader.set(1)
        self._metrics.leader_transitions.inc()
        record = self._observer.record
        log.info(
            "became the leader; this replica sends to Coder now",
            extra=fields(
                lease=self._lease_display,
                identity=self.identity,
                transitions=record.transitions if record else None,
            ),
        )
        self._listener.started_leading()

    def _stop_leading(self) -> None:
        self._leading = False
        self._metrics.is_leader.set(0)
        self._listener.stopped_leading()

    def _another_holds_it(self) -> bool:
        record = self._observer.record
        return record is not None and bool(record.holder) and record.holder != self.identity

    def _observed_holder(self) -> str | None:
        record = self._observer.record
        return record.holder if record is not None else None


def _hint(exc: BaseException) -> str | None:
    if isinstance(exc, KubeError) and exc.status == 403:
        return (
            "grant get, create and update on leases (coordination.k8s.io) in the lease "
            "namespace to the controller's service account"
        )
    return None
