"""Small helpers shared by the delivery tests: lines, waiting, metric values."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry

from logstream.lines import AgentToken, Level, LogLine


def line(token: AgentToken, text: str, *, level: Level = Level.INFO, signal: str = "") -> LogLine:
    """A line for `token` stamped now."""
    return LogLine(token=token, level=level, text=text, time=datetime.now(timezone.utc), signal=signal)


def numbered(token: AgentToken, count: int, *, prefix: str = "line") -> list[LogLine]:
    """`count` lines with texts `<prefix>-0` ... `<prefix>-<count-1>`."""
    return [line(token, f"{prefix}-{i}") for i in range(count)]


async def wait_until(
    condition: Callable[[], bool], *, timeout: float = 5.0, what: str = "the condition"
) -> float:
    """Poll `condition` every 10 ms until it holds; return the seconds it took.

    Raises AssertionError naming `what` when `timeout` seconds pass first.
    """
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The value of one metric sample, 0 when it was never set."""
    value = registry.get_sample_value(name, labels)
    return value if value is not None else 0.0


def records_at(
    records: Sequence[logging.LogRecord], level: int, *, logger: str = "logstream.deliver"
) -> list[logging.LogRecord]:
    """Records of `logger` at exactly `level`."""
    return [r for r in records if r.levelno == level and r.name == logger]


def context(record: logging.LogRecord) -> dict[str, object]:
    """The `fields(...)` context attached to a record."""
    found = getattr(record, "logstream_fields", {})
    return dict(found) if isinstance(found, dict) else {}
