"""The controller's own log: text or JSON lines on stderr.

Call sites attach structured context with `fields(...)`:

    log.warning("retrying batch", extra=fields(agent=fp, attempt=2, delay_s=1.5))

Text format renders context as `key=value` pairs after the message, JSON as top-level
keys. Tokens never reach this module: callers pass `fingerprint(token)` instead.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

_FIELDS = "logstream_fields"


def fields(**context: object) -> dict[str, Any]:
    """Wrap context for the `extra=` argument of a logging call; None values are left out."""
    return {_FIELDS: {k: v for k, v in context.items() if v is not None}}


def _context(record: logging.LogRecord) -> dict[str, object]:
    found = getattr(record, _FIELDS, None)
    return found if isinstance(found, dict) else {}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, tz=timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`2026-01-01T10:00:00.000Z INFO  message key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        pairs = " ".join(f"{k}={_quote(v)}" for k, v in _context(record).items())
        line = f"{_timestamp(record)} {record.levelname:<5} {record.getMessage()}"
        if pairs:
            line += " " + pairs
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line with `time`, `level`, `logger`, `msg` and the context."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        body.update(_context(record))
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def _quote(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or "=" in text or not text) else text


def setup_logging(*, level: str, fmt: str) -> None:
    """Send every `logstream.*` record to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("logstream")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
