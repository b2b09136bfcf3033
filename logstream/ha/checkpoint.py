"""The delivery checkpoint: which signals are accounted for, kept in a ConfigMap.

A signal is accounted for when Coder accepted its line, or when the startup rule chose
not to send it (it predates the first start). The checkpoint records, per signal id
(`LogLine.signal`):

* `event/<event uid>/<n>`: per event uid the highest occurrence count accounted for;
* `created/<uid>`, `deleted/<uid>`, `status/<uid>/<key>`, `claim/<pvc>/<phase>/<uid>`:
  per workspace object uid a set of short digests of the signal ids. An object present
  here is "known": a leader was tracking it.

Uids are stored as short digests too, and times as seconds relative to the write, so a
record takes a few dozen bytes. The checkpoint contains no token, name, uid or message,
only digests, counts and times.

Size stays bounded three ways: an object's record is dropped `retention` after the
object went away, an event's record `retention` after its last accounted occurrence
(events expire in the API server after --event-ttl, 1 h by default), and when the
encoded form would exceed `max_bytes` the oldest records are evicted (deleted objects
first, then events, then live objects). An evicted record can only cause a repeated
line after a restart, or none at all for an old unknown object, never a lost one.

The ConfigMap is replaced with the resourceVersion it was read at, so two writers never
overwrite each other silently: the loser gets `CheckpointConflict`, merges and retries.
Merging is a union (highest counts, all digests), so it never forgets a delivery.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from logstream.kube.api import JsonDict, KubeApi, KubeError
from logstream.ops.logs import fields

log = logging.getLogger("logstream.ha")

FORMAT_VERSION = 1
DATA_KEY = "checkpoint.json"
# Hex digits kept of a signal's SHA-256; an object has a handful of signals, so a
# collision inside one object's set is negligible, and the record stays small.
DIGEST_CHARS = 8
# Hex digits kept of a uid's SHA-256 (48 bits): a collision among even a million
# records is unlikely, and would at worst skip or repeat one line after a restart.
UID_DIGEST_CHARS = 12
# Share of the oldest records evicted per round while the checkpoint is too large.
EVICT_FRACTION = 0.1


class CheckpointConflict(Exception):
    """The ConfigMap changed since it was read (HTTP 409)."""


class CheckpointUnreadable(ValueError):
    """The ConfigMap contains something that is not a checkpoint of a known version."""


def digest(signal: str) -> str:
    return hashlib.sha256(signal.encode()).hexdigest()[:DIGEST_CHARS]


def uid_digest(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:UID_DIGEST_CHARS]


def object_of(signal: str) -> str | None:
    """Return the workspace object uid a non-event signal belongs to, or None."""
    kind, _, rest = signal.partition("/")
    if kind in ("created", "deleted") and rest:
        return rest
    if kind == "status" and "/" in rest:
        return rest.split("/", 1)[0]
    if kind == "claim" and rest.count("/") >= 2:
        return rest.rsplit("/", 1)[1]
    return None


def event_of(signal: str) -> tuple[str, int] | None:
    """Return (event uid, occurrences) of an `event/<uid>/<n>` signal, or None."""
    kind, _, rest = signal.partition("/")
    uid, _, count = rest.rpartition("/")
    if kind != "event" or not uid or not count.isdigit():
        return None
    return uid, int(count)


@dataclass(slots=True)
class ObjectRecord:
    touched: int  # unix seconds of the last change of this record
    signals: set[str] = field(default_factory=set)  # digests
    gone: bool = False


@dataclass(slots=True)
class EventRecord:
    touched: int
    occurrences: int


@dataclass(slots=True)
class Checkpoint:
    """Signals accounted for; see the module docstring. Both maps are keyed by uid digest."""

    objects: dict[str, ObjectRecord] = field(default_factory=dict)
    events: dict[str, EventRecord] = field(default_factory=dict)
    written_at: datetime | None = None
    writer: str = ""

    def __len__(self) -> int:
        return len(self.objects) + len(self.events)

    def covers(self, signal: str) -> bool:
        """Tell whether the line for `signal` is accounted for and needs no sending."""
        # NOTE: a container that waits again for the same reason after it was ready has
        # the same status signal id, so a follower or a restart takes that second line as
        # delivered. Only the waiting reasons of podstatus repeat like that.
        event = event_of(signal)
        if event is not None:
            record = self.events.get(uid_digest(event[0]))
            return record is not None and record.occurrences >= event[1]
        uid = object_of(signal)
        found = self.objects.get(uid_digest(uid)) if uid is not None else None
        return found is not None and digest(signal) in found.signals

    def object_record(self, uid: str) -> ObjectRecord | None:
        return self.objects.get(uid_digest(uid))

    def knows_object(self, uid: str) -> bool:
        return uid_digest(uid) in self.objects

    def knows_event(self, signal: str) -> bool:
        """True when some occurrence of the signal's event is accounted for."""
        event = event_of(signal)
        return event is not None and uid_digest(event[0]) in self.events

    def note(self, signal: str, now: int) -> None:
        """Record `signal` as accounted for."""
        event = event_of(signal)
        if event is not None:
            key = uid_digest(event[0])
            record = self.events.get(key)
            if record is None:
                self.events[key] = EventRecord(now, event[1])
            else:
                record.occurrences = max(record.occurrences, event[1])
                record.touched = now
            return
        uid = object_of(signal)
        if uid is not None:
            self._object(uid, now).signals.add(digest(signal))

    def note_gone(self, uid: str, now: int) -> None:
        """Mark the object as gone; `prune` drops its record after the retention time."""
        self._object(uid, now).gone = True

    def _object(self, uid: str, now: int) -> ObjectRecord:
        key = uid_digest(uid)
        record = self.objects.get(key)
        if record is None:
            record = self.objects[key] = ObjectRecord(now)
        else:
            record.touched = now
        return record

    def merge(self, other: Checkpoint) -> None:
        """Add everything `other` accounts for."""
        for uid, theirs in other.objects.items():
            mine = self.objects.get(uid)
            if mine is None:
                self.objects[uid] = ObjectRecord(theirs.touched, set(theirs.signals), theirs.gone)
            else:
                mine.signals |= theirs.signals
                mine.gone = mine.gone or theirs.gone
                mine.touched = max(mine.touched, theirs.touched)
        for uid, their_event in other.events.items():
            my_event = self.events.get(uid)
            if my_event is None:
                self.events[uid] = EventRecord(their_event.touched, their_event.occurrences)
            else:
                my_event.occurrences = max(my_event.occurrences, their_event.occurrences)
                my_event.touched = max(my_event.touched, their_event.touched)

    def prune(self, now: int, retention_seconds: float) -> int:
        """Drop records of objects gone and events untouched for longer than retention."""
        horizon = now - retention_seconds
        stale_objects = [u for u, r in self.objects.items() if r.gone and r.touched < horizon]
        stale_events = [u for u, r in self.events.items() if r.touched < horizon]
        for uid in stale_objects:
            del self.objects[uid]
        for uid in stale_events:
            del self.events[uid]
        return len(stale_objects) + len(stale_events)

    def encode(self, *, writer: str, now: datetime, max_bytes: int) -> tuple[str, int]:
        """Encode the checkpoint as JSON, evicting the oldest records until it fits in
        `max_bytes`; return the text and the number of records evicted."""
        self.writer = writer
        self.written_at = now
        text = self._to_json()
        evicted = 0
        while len(text.encode()) > max_bytes and len(self) > 0:
            evicted += self._evict_oldest(max(1, int(len(self) * EVICT_FRACTION)))
            text = self._to_json()
        return text, evicted

    def _evict_oldest(self, count: int) -> int:
        # Deleted objects matter least, live objects most (losing one replays nothing).
        ranked: list[tuple[int, int, str, str]] = []
        for uid, obj in self.objects.items():
            ranked.append((0 if obj.gone else 2, obj.touched, "object", uid))
        for uid, event in self.events.items():
            ranked.append((1, event.touched, "event", uid))
        ranked.sort()
        for _, _, kind, uid in ranked[:count]:
            if kind == "object":
                del self.objects[uid]
            else:
                del self.events[uid]
        return min(count, len(ranked))

    def _to_json(self) -> str:
        # Times relative to the write keep numbers short; lists keep records short.
        base = int(self.written_at.timestamp()) if self.written_at else 0
        live: dict[str, list[Any]] = {}
        gone: dict[str, list[Any]] = {}
        for key, obj in self.objects.items():
            (gone if obj.gone else live)[key] = [obj.touched - base, *sorted(obj.signals)]
        body = {
            "version": FORMAT_VERSION,
            "writer": self.writer,
            "written": self.written_at.isoformat() if self.written_at else None,
            "objects": live,
            "gone": gone,
            "events": {key: [e.touched - base, e.occurrences] for key, e in self.events.items()},
        }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> Checkpoint:
        """Parse stored JSON; `CheckpointUnreadable` when it is not a known checkpoint."""
        try:
            body = json.loads(text)
            if not isinstance(body, dict) or body.get("version") != FORMAT_VERSION:
                version = body.get("version") if isinstance(body, dict) else None
                raise CheckpointUnreadable(f"unknown checkpoint version {version!r}")
            written = body.get("written")
            checkpoint = cls(
                writer=str(body.get("writer") or ""),
                written_at=datetime.fromisoformat(written) if isinstance(written, str) else None,
            )
            base = int(checkpoint.written_at.timestamp()) if checkpoint.written_at else 0
            for gone, section in ((False, "objects"), (True, "gone")):
                for key, entry in (body.get(section) or {}).items():
                    signals = {str(d) for d in entry[1:]}
                    checkpoint.objects[str(key)] = ObjectRecord(base + int(entry[0]), signals, gone)
            for key, entry in (body.get("events") or {}).items():
                checkpoint.events[str(key)] = EventRecord(base + int(entry[0]), int(entry[1]))
        except CheckpointUnreadable:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise CheckpointUnreadable(f"not a checkpoint: {exc!r}") from exc
        return checkpoint


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """Contents of the checkpoint ConfigMap: the checkpoint (None when absent or
    unreadable) and the resourceVersion a replacement must name ("" when there is none)."""

    checkpoint: Checkpoint | None
    resource_version: str
    size_bytes: int = 0


class CheckpointStore:
    """The ConfigMap `name` in `namespace` that contains the checkpoint."""

    def __init__(self, api: KubeApi, *, namespace: str, name: str) -> None:
        self._api = api
        self.namespace = namespace
        self.name = name
        self._collection = f"/api/v1/namespaces/{namespace}/configmaps"

    @property
    def display(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    async def read(self) -> StoredCheckpoint:
        try:
            body = await self._api.request("GET", f"{self._collection}/{self.name}")
        except KubeError as exc:
            if exc.status == 404:
                return StoredCheckpoint(None, "")
            raise
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        text = (body.get("data") or {}).get(DATA_KEY)
        if not isinstance(text, str):
            return StoredCheckpoint(None, version)
        try:
            return StoredCheckpoint(Checkpoint.decode(text), version, len(text.encode()))
        except CheckpointUnreadable as exc:
            log.warning(
                "the checkpoint cannot be read; it is treated as absent and replaced at the next write",
                extra=fields(checkpoint=self.display, error=str(exc)),
            )
            return StoredCheckpoint(None, version)

    async def write(self, text: str, resource_version: str) -> str:
        """Create or replace the ConfigMap; its new resourceVersion.

        `CheckpointConflict` when it changed since `resource_version` ("" = create).
        """
        body: JsonDict = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/name": "logstream-kube"},
            },
            "data": {DATA_KEY: text},
        }
        try:
            if resource_version:
                body["metadata"]["resourceVersion"] = resource_version
                stored = await self._api.request("PUT", f"{self._collection}/{self.name}", body=body)
            else:
                stored = await self._api.request("POST", self._collection, body=body)
        except KubeError as exc:
            # 404 on a replace: someone deleted the ConfigMap; re-reading finds it absent.
            if exc.status == 409 or (exc.status == 404 and resource_version):
                raise CheckpointConflict(exc.message) from exc
            raise
        return str((stored.get("metadata") or {}).get("resourceVersion") or "")
