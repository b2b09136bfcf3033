"""The bounded, ordered buffer of one agent's lines, and how batches are cut from it.

`Dispatcher.submit` appends here and the agent's sender takes batches from the front;
both run on the event loop thread, so no lock is needed. The buffer guarantees:

* Lines leave in the order they were appended.
* It never contains more than `max_lines` lines. When full it drops the oldest line, and
  the next batch starts with one warning line that says how many lines were dropped at
  that place.
* A batch stays within the line and byte caps. A single line always fits, because
  `log_entry` cuts its text to Coder's 1024-character limit.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, replace

from logstream.deliver.coder import log_entry
from logstream.lines import Level, LogLine

# JSON around the entries of a PATCH body: `{"log_source_id": "<uuid>", "logs": []}`.
BODY_OVERHEAD_BYTES = 80


def entry_bytes(line: LogLine) -> int:
    """Return the size of the line's entry in a PATCH body, in bytes, with its comma."""
    return len(json.dumps(log_entry(line)).encode()) + 1


def dropped_notice_text(count: int) -> str:
    """Return the text of the line sent in place of `count` lines dropped from a full queue."""
    noun = "line" if count == 1 else "lines"
    return f"… {count} earlier {noun} dropped: the queue for this agent was full"


@dataclass(frozen=True, slots=True)
class _Queued:
    line: LogLine
    size_bytes: int
    # Monotonic time at which the line was appended; the batch window counts from it.
    appended_at: float


class LineBuffer:
    """One agent's pending lines, oldest first, with at most `max_lines` of them."""

    def __init__(self, *, max_lines: int) -> None:
        self._max_lines = max_lines
        self._entries: deque[_Queued] = deque()
        self._bytes = 0
        # Lines dropped for lack of room just before the current head; reported by the
        # notice line that opens the next batch.
        self._dropped_before_head = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def dropped_before_head(self) -> int:
        """Lines dropped since the last batch was cut, not yet reported by a notice."""
        return self._dropped_before_head

    @property
    def oldest_appended_at(self) -> float | None:
        """Monotonic time at which the oldest pending line was appended, or None if empty."""
        return self._entries[0].appended_at if self._entries else None

    def append(self, line: LogLine, *, now: float) -> bool:
        """Append a line; return True when the oldest line had to be dropped to make room."""
        dropped = False
        if len(self._entries) >= self._max_lines:
            oldest = self._entries.popleft()
            self._bytes -= oldest.size_bytes
            self._dropped_before_head += 1
            dropped = True
        size = entry_bytes(line)
        self._entries.append(_Queued(line, size, now))
        self._bytes += size
        return dropped

    def has_full_batch(self, *, max_lines: int, max_bytes: int) -> bool:
        """Tell whether a batch cut now would reach a cap, so waiting longer gains nothing."""
        return len(self._entries) >= max_lines or self._bytes + BODY_OVERHEAD_BYTES >= max_bytes

    def take_batch(self, *, max_lines: int, max_bytes: int) -> list[LogLine]:
        """Remove and return the next batch: the dropped-lines notice, then the oldest lines."""
        batch: list[LogLine] = []
        size = BODY_OVERHEAD_BYTES
        if self._dropped_before_head and self._entries:
            notice = self._dropped_notice()
            batch.append(notice)
            size += entry_bytes(notice)
            self._dropped_before_head = 0

        while self._entries and len(batch) < max_lines:
            head = self._entries[0]
            # The first line always goes, so that a batch is never empty.
            if batch and size + head.size_bytes > max_bytes:
                break
            self._entries.popleft()
            self._bytes -= head.size_bytes
            size += head.size_bytes
            batch.append(head.line)
        return batch

    def take_all(self) -> list[LogLine]:
        """Remove and return every pending line, for callers that drop them."""
        lines = [entry.line for entry in self._entries]
        self._entries.clear()
        self._bytes = 0
        self._dropped_before_head = 0
        return lines

    def _dropped_notice(self) -> LogLine:
        first = self._entries[0].line
        # Same token and time as the first kept line, so it sorts where the gap is.
        return replace(
            first, level=Level.WARN, text=dropped_notice_text(self._dropped_before_head), signal=""
        )
