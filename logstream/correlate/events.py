"""Read a core/v1 Event: where it points, how often it happened, and how to show it.

Events are updated in place: a repeat raises `count` (or `series.count`) and arrives as
MODIFIED. `occurrences()` is what the correlator remembers per event uid so that relists
and reconnects never resend a line, while every growth is shown with `(xN)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from logstream.correlate.severity import event_level
from logstream.lines import Level


class BadObject(ValueError):
    """An object lacks a field the controller needs; it is logged and skipped."""


@dataclass(frozen=True, slots=True)
class EventView:
    """One Event. The fields that route it are read at once, the others when used.

    Most events in a cluster concern objects that are not workspaces and are dropped
    after routing, so their message, time and count are never read.
    """

    uid: str
    namespace: str
    target_uid: str  # involvedObject.uid, may be empty
    target_kind: str
    target_name: str
    target_namespace: str
    obj: dict[str, Any] = field(repr=False, compare=False)

    @property
    def container(self) -> str:
        """The container named by fieldPath `spec.containers{dev}`, may be empty."""
        field_path = (self.obj.get("involvedObject") or {}).get("fieldPath")
        match = _FIELD_PATH_CONTAINER.search(str(field_path or ""))
        return match.group(1) if match else ""

    @property
    def type(self) -> str:
        return str(self.obj.get("type") or "Normal")

    @property
    def reason(self) -> str:
        return str(self.obj.get("reason") or "")

    @property
    def message(self) -> str:
        return _one_line(str(self.obj.get("message") or self.obj.get("note") or ""))

    @property
    def occurrences(self) -> int:
        return occurrences(self.obj)

    @property
    def time(self) -> datetime:
        return event_time(self.obj)

    @property
    def level(self) -> Level:
        return event_level(self.type, self.reason, self.message)

    def render(self) -> str:
        """`Warning FailedCreate ReplicaSet/ws-abc: <message> (x7)`."""
        where = f"{self.target_kind}/{self.target_name}"
        container = self.container
        if container:
            where += f" container {container}"
        text = f"{self.type} {self.reason} {where}: {self.message}"
        count = self.occurrences
        return text + (f" (x{count})" if count > 1 else "")


_FIELD_PATH_CONTAINER = re.compile(r"spec\.(?:init|ephemeral)?[cC]ontainers\{([^}]*)\}")


def read_event(obj: dict[str, Any]) -> EventView:
    """Read the routing fields of an event; `BadObject` when the event is unusable."""
    meta = obj.get("metadata")
    target = obj.get("involvedObject")
    if not isinstance(meta, dict) or not isinstance(target, dict):
        raise BadObject("event without metadata or involvedObject")
    uid = meta.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadObject("event without metadata.uid")

    return EventView(
        uid=uid,
        namespace=str(meta.get("namespace") or ""),
        target_uid=str(target.get("uid") or ""),
        target_kind=str(target.get("kind") or ""),
        target_name=str(target.get("name") or ""),
        target_namespace=str(target.get("namespace") or meta.get("namespace") or ""),
        obj=obj,
    )


def occurrences(obj: dict[str, Any]) -> int:
    """How many times the event happened: `count`, else `series.count`, else 1."""
    series = obj.get("series")
    for candidate in (obj.get("count"), series.get("count") if isinstance(series, dict) else None):
        if isinstance(candidate, int) and candidate > 0:
            return candidate
    return 1


def event_time(obj: dict[str, Any]) -> datetime:
    """The latest time the event is known to have happened."""
    series = obj.get("series")
    candidates = (
        series.get("lastObservedTime") if isinstance(series, dict) else None,
        obj.get("lastTimestamp"),
        obj.get("eventTime"),
        obj.get("firstTimestamp"),
        (obj.get("metadata") or {}).get("creationTimestamp"),
    )
    for candidate in candidates:
        parsed = parse_time(candidate)
        if parsed is not None:
            return parsed
    return datetime.now(timezone.utc)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _one_line(text: str) -> str:
    # The dashboard drops text before a final carriage return; newlines split nothing.
    return " ".join(text.replace("\r", " ").split("\n")).strip()
