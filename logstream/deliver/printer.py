"""The dry-run sink: prints each line on stdout instead of sending it to Coder.

It implements `LineSink`, so `--dry-run` swaps it in for the dispatcher and the rest of
the controller runs unchanged. Every line becomes exactly one output line, in submit
order, flushed at once:

    2026-01-01T10:00:00.123Z warn tok-1a2b3c4d Pod default/ws-1: Back-off pulling image

Tokens are printed only as their fingerprint. Line breaks inside a text are escaped as
`\\n` and `\\r`, so that one line of output is one log line.
"""

from __future__ import annotations

import sys
from typing import TextIO

from logstream.deliver.coder import format_created_at
from logstream.lines import AgentToken, LogLine, fingerprint


class PrintSink:
    """A `LineSink` that writes `<RFC 3339 time> <level> <agent fingerprint> <text>` lines."""

    def __init__(self, *, stream: TextIO | None = None) -> None:
        """Print to `stream`, or to the current `sys.stdout` when None."""
        self._stream = stream

    def submit(self, line: LogLine) -> None:
        """Print the line and flush, so output keeps up with a `kubectl logs -f`."""
        stream = self._stream if self._stream is not None else sys.stdout
        text = line.text.replace("\r", "\\r").replace("\n", "\\n")
        stream.write(
            f"{format_created_at(line.time)} {line.level.value} {fingerprint(line.token)} {text}\n"
        )
        stream.flush()

    def release(self, token: AgentToken) -> None:
        """Do nothing, because the printer keeps no per-agent state."""
