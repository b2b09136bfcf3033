"""The narrow interface between the Kubernetes half and the delivery half.

The correlator produces `LogLine` values; a `LineSink` (the dispatcher, or the dry-run
printer) consumes them. Lines for one agent token are submitted in the order they must
appear in the workspace log; a sink keeps that order per token.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import NewType, Protocol

AgentToken = NewType("AgentToken", str)

# Coder stores at most this many characters of a line's output (silently truncated).
MAX_LINE_CHARS = 1024
TRUNCATION_MARKER = " …[truncated]"


class Level(str, enum.Enum):
    """Log levels Coder accepts; any other value makes it reject the whole batch."""

    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line for one agent's startup log. `text` is already cut to `MAX_LINE_CHARS`."""

    # Kept out of repr so that a logged or printed line never shows the secret.
    token: AgentToken = field(repr=False)
    level: Level
    text: str
    time: datetime
    # Identifies the signal this line reports (for example "event/<uid>/7"), so delivery
    # progress can be recorded; empty for lines that need no such record.
    signal: str = ""


class LineSink(Protocol):
    """Where the correlator sends lines. Both methods return at once and never block."""

    def submit(self, line: LogLine) -> None:
        """Queue one line behind the earlier lines of the same token."""

    def release(self, token: AgentToken) -> None:
        """The last object using this token is gone: flush its queue, then forget it."""


def fingerprint(token: str) -> str:
    """A short, stable, non-reversible name for a token, safe for logs."""
    return "tok-" + hashlib.sha256(token.encode()).hexdigest()[:8]


def truncate(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """Cut `text` to `limit` characters, ending with a visible marker when cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
