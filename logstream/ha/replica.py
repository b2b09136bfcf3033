"""One replica's part in leader election: elector, gate, checkpoint, in a fixed order.

    startup:   read checkpoint -> baseline for the correlator -> gate + elector start
    follower:  every checkpoint interval, re-read the checkpoint and prune held lines
    takeover:  re-read the checkpoint, merge it, submit uncovered held lines, send directly
    leader:    every checkpoint interval, write the checkpoint if anything changed
    lost:      the elector pauses delivery at the renew deadline; back to follower
    shutdown:  (after the dispatcher flushed) final checkpoint write, stop renewing,
               release the Lease

Tasks: the elector's and the checkpoint task, both created and ended here. Only the
checkpoint task reads and writes the checkpoint and performs takeovers. The elector
only switches the gate to holding (synchronously, at its deadline) and wakes that task.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from logstream.config import Settings
from logstream.ha.baseline import CheckpointBaseline
from logstream.ha.checkpoint import CheckpointConflict, CheckpointStore, StoredCheckpoint
from logstream.ha.election import ElectionTiming, LeaderElector
from logstream.ha.gate import Delivery, LeadershipGate
from logstream.ha.lease import KubeLeaseStore
from logstream.ha.recorder import DeliveryRecorder
from logstream.kube.api import KubeApi, KubeError
from logstream.ops.logs import fields
from logstream.ops.metrics import (
    CHECKPOINT_CONFLICT,
    CHECKPOINT_FAILED,
    CHECKPOINT_WRITTEN,
    Metrics,
)

log = logging.getLogger("logstream.ha")

# Writes tried in one round when other writers keep winning (each loss merges first).
WRITE_ATTEMPTS = 3
STARTUP_BACKOFF_FIRST_SECONDS = 0.5
STARTUP_BACKOFF_MAX_SECONDS = 10.0


class HaSetupError(Exception):
    """Leader election cannot work with the given settings or permissions."""


@dataclass(frozen=True, slots=True)
class HaOptions:
    """Leader-election settings; each field mirrors a `Settings` field."""

    identity: str
    namespace: str
    lease_name: str
    timing: ElectionTiming
    checkpoint_interval_seconds: float
    checkpoint_max_bytes: int
    checkpoint_retention_seconds: float
    max_held_per_agent: int

    @property
    def checkpoint_name(self) -> str:
        return f"{self.lease_name}-checkpoint"

    @classmethod
    def from_settings(cls, settings: Settings) -> HaOptions:
        return cls(
            identity=settings.leader_election_identity,
            namespace=settings.leader_election_namespace,
            lease_name=settings.leader_election_lease_name,
            timing=ElectionTiming(
                lease_duration_seconds=settings.leader_election_lease_duration_seconds,
                renew_deadline_seconds=settings.leader_election_renew_deadline_seconds,
                retry_period_seconds=settings.leader_election_retry_period_seconds,
            ),
            checkpoint_interval_seconds=settings.checkpoint_interval_seconds,
            checkpoint_max_bytes=settings.checkpoint_max_bytes,
            checkpoint_retention_seconds=settings.checkpoint_retention_seconds,
            max_held_per_agent=settings.queue_max_lines,
        )


class Replica:
    """Leader election and the delivery checkpoint for one controller process."""

    def __init__(self, api: KubeApi, *, options: HaOptions, metrics: Metrics) -> None:
        self._options = options
        self._metrics = metrics
        self.recorder = DeliveryRecorder()
        self._leases = KubeLeaseStore(api, namespace=options.namespace, name=options.lease_name)
        self._checkpoints = CheckpointStore(
            api, namespace=options.namespace, name=options.checkpoint_name
        )
        self._gate: LeadershipGate | None = None
        self._elector: LeaderElector | None = None
        self._wakeup = asyncio.Event()
        self._failed = asyncio.Event()
        self._failure: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # resourceVersion of the checkpoint ConfigMap as last read or written here.
        self._version = ""
        self._request_failures = 0
        # Grows each time this replica starts leading, so that a takeover can tell
        # whether the checkpoint it read belongs to the current term.
        self._term = 0

    # Startup -------------------------------------------------------------------------

    async def load_baseline(self) -> CheckpointBaseline:
        """Read the checkpoint before any watch starts and build the correlator's baseline."""
        stored = await self._read_at_startup()
        checkpoint = stored.checkpoint
        self._version = stored.resource_version
        if checkpoint is None:
            log.info(
                "no delivery checkpoint yet: objects that exist now are indexed without replay",
                extra=fields(checkpoint=self._checkpoints.display),
            )
        else:
            self._metrics.checkpoint_bytes.set(stored.size_bytes)
            log.info(
                "read the delivery checkpoint; what it does not cover is sent after a takeover",
                extra=fields(
                    checkpoint=self._checkpoints.display,
                    objects=len(checkpoint.objects),
                    events=len(checkpoint.events),
                    written=checkpoint.written_at.isoformat() if checkpoint.written_at else None,
                    writer=checkpoint.writer or None,
                ),
            )
        return CheckpointBaseline(checkpoint, recorder=self.recorder)

    async def _read_at_startup(self) -> StoredCheckpoint:
        attempt = 0
        while True:
            try:
                return await self._checkpoints.read()
            except KubeError as exc:
                if exc.status in (401, 403):
                    raise HaSetupError(
                        f"--leader-elect: reading {self._checkpoints.display} was rejected "
                        f"({exc}); grant get, create and update on configmaps and "
                        "leases (coordination.k8s.io) in namespace "
                        f"{self._options.namespace!r} to the controller's service account"
                    ) from exc
                attempt += 1
                delay = min(STARTUP_BACKOFF_MAX_SECONDS, STARTUP_BACKOFF_FIRST_SECONDS * 2 ** min(attempt, 10))
                delay *= random.uniform(0.5, 1.0)
                log.warning(
                    "could not read the delivery checkpoint; trying again",
                    extra=fields(checkpoint=self._checkpoints.display, error=str(exc),
                                 attempt=attempt, delay_s=round(delay, 2)),
                )
                await asyncio.sleep(delay)

    def gate(self, delivery: Delivery) -> LeadershipGate:
        """Create the correlator's sink in front of `delivery`. It keeps every line until
        `start()` and a takeover."""
        gate = LeadershipGate(
            delivery, max_held_per_agent=self._options.max_held_per_agent, metrics=self._metrics
        )
        gate.hold()
        self._gate = gate
        self._elector = LeaderElector(
            store=self._leases,
            identity=self._options.identity,
            timing=self._options.timing,
            listener=self,
            metrics=self._metrics,
            lease_display=self._leases.display,
        )
        self._metrics.is_leader.set(0)
        return gate

    def start(self) -> None:
        """Start the elector and the checkpoint task."""
        assert self._elector is not None, "call gate() first"
        log.info(
            "leader election on",
            extra=fields(lease=self._leases.display, identity=self._options.identity,
                         checkpoint=self._checkpoints.display),
        )
        self._tasks = [
            asyncio.create_task(self._elector.run(), name="leader election"),
            asyncio.create_task(self._checkpoint_loop(), name="checkpoint"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._check_task)

    async def wait_until_failed(self) -> None:
        """Raise the error of a task that ended; for the pipeline's supervisor."""
        await self._failed.wait()
        if self._failure is not None:
            raise self._failure

    def _check_task(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception() or RuntimeError(f"task {task.get_name()!r} ended early")
        if self._failure is None:
            self._failure = error
        self._failed.set()

    # LeadershipListener --------------------------------------------------------------

    def started_leading(self) -> None:
        # The takeover needs a fresh checkpoint read: the checkpoint task does it.
        self._term += 1
        self._wakeup.set()

    def stopped_leading(self) -> None:
        assert self._gate is not None
        self._gate.hold()
        self._wakeup.set()

    # The checkpoint task ---------------------------------------------------------------

    async def _checkpoint_loop(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self._step()
            except KubeError as exc:
                self._request_failures += 1
                if self._request_failures & (self._request_failures - 1) == 0:
                    log.warning(
                        "checkpoint request failed; trying again at the next interval",
                        extra=fields(
                            checkpoint=self._checkpoints.display,
                            error=str(exc),
                            attempt=self._request_failures,
                            hint=_hint(exc, self._options.namespace),
                        ),
                    )
            else:
                self._request_failures = 0
            try:
                await asyncio.wait_for(self._wakeup.wait(), self._options.checkpoint_interval_seconds)
            except TimeoutError:
                pass

    async def _step(self) -> None:
        assert self._elector is not None and self._gate is not None
        if not self._elector.is_leader:
            await self._refresh_held()
        elif not self._gate.leading:
            await self._take_over()
        else:
            await self._write_if_changed()

    async def _refresh_held(self) -> None:
        """A follower drops the held lines that the leader's checkpoint covers."""
        assert self._gate is not None
        self.recorder.prune(self._options.checkpoint_retention_seconds)
        stored = await self._checkpoints.read()
        if stored.checkpoint is not None:
            dropped = self._gate.prune(stored.checkpoint.covers)
            self._metrics.checkpoint_bytes.set(stored.size_bytes)
            if dropped:
                log.debug("dropped held lines the leader delivered",
                          extra=fields(lines=dropped, held=self._gate.held_lines))

    async def _take_over(self) -> None:
        assert self._elector is not None and self._gate is not None
        term = self._term
        stored = await self._checkpoints.read()
        # Leadership lost, or lost and won again, during the read: the read may predate
        # another leader's deliveries, so read again in the next step.
        if not self._elector.is_leader or term != self._term:
            return
        self._version = stored.resource_version
        checkpoint = stored.checkpoint
        if checkpoint is not None:
            self.recorder.adopt(checkpoint)
        result = self._gate.take_over(checkpoint.covers if checkpoint is not None else _covers_nothing)
        log.info(
            "took over delivery: sending the held lines the checkpoint does not cover",
            extra=fields(
                identity=self._options.identity,
                sent=result.sent,
                covered=result.covered,
                agents=result.agents,
                checkpoint_writer=checkpoint.writer if checkpoint is not None else None,
            ),
        )

    async def _write_if_changed(self) -> None:
        """Write the checkpoint when something was delivered since the last write."""
        if not self.recorder.dirty:
            return
        for _ in range(WRITE_ATTEMPTS):
            snapshot = self.recorder.snapshot(
                writer=self._options.identity,
                max_bytes=self._options.checkpoint_max_bytes,
                retention_seconds=self._options.checkpoint_retention_seconds,
            )
            if snapshot.evicted:
                log.warning(
                    "checkpoint reached its size limit; evicted the oldest records",
                    extra=fields(checkpoint=self._checkpoints.display, evicted=snapshot.evicted,
                                 max_bytes=self._options.checkpoint_max_bytes),
                )
            try:
                self._version = await self._checkpoints.write(snapshot.text, self._version)
            except CheckpointConflict:
                # Another writer (a former or a concurrent leader) came first: merge, retry.
                self._metrics.checkpoint_writes.labels(result=CHECKPOINT_CONFLICT).inc()
                stored = await self._checkpoints.read()
                self._version = stored.resource_version
                if stored.checkpoint is not None:
                    self.recorder.adopt(stored.checkpoint)
                continue
            except KubeError:
                self._metrics.checkpoint_writes.labels(result=CHECKPOINT_FAILED).inc()
                raise
            self.recorder.mark_written(snapshot.generation)
            self._metrics.checkpoint_writes.labels(result=CHECKPOINT_WRITTEN).inc()
            self._metrics.checkpoint_bytes.set(len(snapshot.text.encode()))
            return

    # Shutdown ------------------------------------------------------------------------

    async def finish(self) -> None:
        """Record progress and release the Lease; call after the dispatcher flushed.

        Idempotent. Renewal goes on until the final write is done, so no successor can
        take over while this replica still sends.
        """
        if not self._tasks:
            return
        checkpoint_task, elector_task = self._tasks[1], self._tasks[0]
        self._tasks = []
        checkpoint_task.cancel()
        await asyncio.gather(checkpoint_task, return_exceptions=True)

        assert self._elector is not None and self._gate is not None
        if self._elector.is_leader and self._gate.leading:
            try:
                await asyncio.wait_for(
                    self._write_if_changed(), self._options.timing.renew_deadline_seconds
                )
                log.info("recorded delivery progress for the next leader",
                         extra=fields(checkpoint=self._checkpoints.display))
            except (KubeError, TimeoutError) as exc:
                log.warning(
                    "could not record delivery progress; the next leader may repeat the lines "
                    "sent since the last checkpoint",
                    extra=fields(checkpoint=self._checkpoints.display, error=str(exc) or repr(exc)),
                )
        elector_task.cancel()
        await asyncio.gather(elector_task, return_exceptions=True)
        await self._elector.release()


def _covers_nothing(signal: str) -> bool:
    return False


def _hint(exc: KubeError, namespace: str) -> str | None:
    if exc.status == 403:
        return (
            f"grant get, create and update on configmaps in namespace {namespace!r} to the "
            "controller's service account"
        )
    return None
