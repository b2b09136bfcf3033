"""The correlator's `Baseline` from the checkpoint read at startup: which signals of the
first lists are still owed to Coder.

With no checkpoint (the very first start) nothing is owed, as without leader election,
and every skipped signal is recorded as accounted for, so a later restart does not send
it either. With a checkpoint, a signal it covers is not owed; otherwise it is owed when:

* its object is known to the checkpoint (a leader was tracking it): whatever happened to
  it while no replica was sending;
* its event has a record with fewer occurrences: the event repeated in the meantime;
* its object is unknown but was created after the checkpoint was written (less a grace
  period for watch lag and clock skew): the object appeared while no replica was
  sending, so all of it is owed, `created` line included.

An unknown object older than the checkpoint (its record was evicted, or it never was a
workspace object while a leader ran) is treated like one seen at the first start: its
present state is recorded and nothing is sent.

Called from the correlator's task only; `_replay` is its own state.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from logstream.correlate.index import Uid
from logstream.ha.checkpoint import Checkpoint
from logstream.ha.recorder import DeliveryRecorder

# An unknown object created up to this long before the checkpoint was written still
# counts as new: the leader's watch may have lagged, and the API server's clock (which
# stamps creationTimestamp) may differ from the controller's (which stamps the write).
UNKNOWN_OBJECT_GRACE_SECONDS = 30.0


class CheckpointBaseline:
    """Implements `logstream.correlate.correlator.Baseline` with a checkpoint."""

    def __init__(self, checkpoint: Checkpoint | None, *, recorder: DeliveryRecorder) -> None:
        self._checkpoint = checkpoint
        self._recorder = recorder
        # Object uid -> whether its uncovered signals are owed, decided at its created signal.
        self._replay: dict[Uid, bool] = {}

    def owed(self, signal: str, *, object_uid: Uid, object_created: datetime | None = None) -> bool:
        checkpoint = self._checkpoint
        if signal.startswith("created/"):
            self._replay[object_uid] = self._is_owed_object(object_uid, object_created)
        if checkpoint is not None and checkpoint.covers(signal):
            return False
        # Objects never asked about were tracked after the start, from a live change.
        replay = self._replay.get(object_uid, True)
        if checkpoint is not None and (replay or checkpoint.knows_event(signal)):
            return True
        self._recorder.skipped(signal)
        return False

    def forget(self, object_uid: Uid) -> None:
        self._replay.pop(object_uid, None)
        self._recorder.gone(object_uid)

    def _is_owed_object(self, uid: Uid, created: datetime | None) -> bool:
        checkpoint = self._checkpoint
        if checkpoint is None:
            return False
        if checkpoint.knows_object(uid):
            return True
        if created is None or checkpoint.written_at is None:
            return False
        return created >= checkpoint.written_at - timedelta(seconds=UNKNOWN_OBJECT_GRACE_SECONDS)
