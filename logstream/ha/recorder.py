"""Collection of what the checkpoint records: delivered lines, skipped signals, objects
that went away.

    senders --delivered(batch)--> DeliveryRecorder.inbox --fold (checkpoint task)--> Checkpoint
    baseline --skipped(signal), gone(uid)--/

`delivered`, `skipped` and `gone` are called from other tasks (the dispatcher's senders,
the correlator) and only append to the inbox. Everything else is called by the one task
that owns the checkpoint (`logstream.ha.replica`), which folds the inbox in before it
reads or writes, so the checkpoint itself has one owner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from logstream.ha.checkpoint import Checkpoint
from logstream.lines import LogLine


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An encoded checkpoint and the recorder generation it contains."""

    text: str
    generation: int
    evicted: int
    pruned: int


class DeliveryRecorder:
    """The local checkpoint and the inbox that feeds it."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # ("signal", id) or ("gone", object uid), in the order they happened.
        self._inbox: list[tuple[str, str]] = []
        self.checkpoint = Checkpoint()
        self._generation = 0
        self._written_generation = 0

    # Called from other tasks: append only ----------------------------------------------

    def delivered(self, lines: Sequence[LogLine]) -> None:
        """Record lines that Coder accepted; this is the dispatcher's `on_delivered`."""
        self._inbox.extend(("signal", line.signal) for line in lines if line.signal)

    def skipped(self, signal: str) -> None:
        """Record a signal the startup rule chose not to send, so it counts as accounted for."""
        self._inbox.append(("signal", signal))

    def gone(self, object_uid: str) -> None:
        """Record that the object went away, so its record is pruned after the retention time."""
        self._inbox.append(("gone", object_uid))

    # Called by the owner ---------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """True when something happened since the last successful write."""
        return bool(self._inbox) or self._generation != self._written_generation

    def fold(self) -> None:
        """Move the inbox into the checkpoint."""
        if not self._inbox:
            return
        now = int(self._clock())
        inbox, self._inbox = self._inbox, []
        for kind, value in inbox:
            if kind == "gone":
                self.checkpoint.note_gone(value, now)
            else:
                self.checkpoint.note(value, now)
        self._generation += 1

    def adopt(self, other: Checkpoint) -> None:
        """Merge a checkpoint read from the cluster into the local one."""
        self.fold()
        self.checkpoint.merge(other)
        self._generation += 1

    def prune(self, retention_seconds: float) -> int:
        self.fold()
        return self.checkpoint.prune(int(self._clock()), retention_seconds)

    def snapshot(self, *, writer: str, max_bytes: int, retention_seconds: float) -> Snapshot:
        """Fold, prune and encode the checkpoint for writing."""
        pruned = self.prune(retention_seconds)
        text, evicted = self.checkpoint.encode(
            writer=writer, now=datetime.fromtimestamp(self._clock(), timezone.utc), max_bytes=max_bytes
        )
        return Snapshot(text, self._generation, evicted, pruned)

    def mark_written(self, generation: int) -> None:
        self._written_generation = max(self._written_generation, generation)
