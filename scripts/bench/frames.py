"""Scenarios of the processing benchmark and the watch frames that make them up.

A scenario is a number of frames of four categories:

* `irrelevant_event`: an Event ADDED about a non-workspace pod; the controller drops it.
* `irrelevant_pod`: a status update (MODIFIED) of a non-workspace pod; dropped.
* `line_event`: an Event ADDED with a new uid about a workspace pod; one line each.
* `line_status`: a status update of a workspace pod whose container restarted once
  more after an OOM kill; one line each.

Event frames go to the events watch and pod frames to the pods watch, spread evenly
so that both watches carry their mix from start to end. Every workspace pod carries one
agent token, so the expected number of lines is `line_event + line_status`.

The fake API server and the benchmark build the same `Scenario` from its name and size,
so they agree on what was sent without exchanging the frames. Frames are rendered from
templates while they are streamed, so a large scenario does not sit in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from scripts.bench import objects

CATEGORIES = ("irrelevant_event", "irrelevant_pod", "line_event", "line_status")
PODS_PATH = "/api/v1/pods"
EVENTS_PATH = "/api/v1/events"
NAMESPACE = "bench"

# Shares of each category in the scenarios, in percent of the frames.
_MIXES: dict[str, dict[str, int]] = {
    "irrelevant-events": {"irrelevant_event": 100},
    "irrelevant-pods": {"irrelevant_pod": 100},
    "event-lines": {"line_event": 100},
    "status-lines": {"line_status": 100},
    # Events outnumber pod updates in a busy cluster; a few percent concern workspaces.
    "mix": {"irrelevant_event": 55, "irrelevant_pod": 35, "line_event": 7, "line_status": 3},
}
SCENARIO_NAMES = tuple(_MIXES)

# Frames joined into one write of the fake API server.
FRAMES_PER_WRITE = 64


def uid_of(prefix: int, number: int) -> str:
    """Return a UUID-shaped uid; `prefix` keeps the uids of different kinds apart."""
    return f"{prefix:08x}-0000-4000-8000-{number:012x}"


def token_of(number: int) -> str:
    """Return the agent token of workspace pod `number`, a UUID as Coder issues them."""
    return f"00000000-0000-4000-a000-{number:012x}"


@dataclass(frozen=True)
class Scenario:
    name: str
    counts: dict[str, int]
    workspace_pods: int = 100
    app_pods: int = 1000

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def expected_lines(self) -> int:
        return self.counts.get("line_event", 0) + self.counts.get("line_status", 0)

    @property
    def dropped(self) -> int:
        return self.counts.get("irrelevant_event", 0) + self.counts.get("irrelevant_pod", 0)


def build_scenario(name: str, frames: int) -> Scenario:
    """Build the scenario `name` with `frames` frames in all, split by its category shares."""
    shares = _MIXES[name]
    counts = {category: frames * share // 100 for category, share in shares.items()}
    # Rounding leftovers go to the largest category, so the total is exact.
    largest = max(shares, key=lambda category: shares[category])
    counts[largest] += frames - sum(counts.values())
    return Scenario(name, counts)


def _template(obj: dict[str, Any], *, numbers: tuple[str, ...] = ()) -> str:
    """Turn a frame into a %-format string in which each `@@key@@` string becomes a `%(key)s` field."""
    text = json.dumps({"type": "@@type@@", "object": obj}, separators=(",", ":"))
    text = text.replace("%", "%%")
    for key in numbers:
        text = text.replace(f'"@@{key}@@"', f"%({key})d")
    while "@@" in text:
        start = text.index("@@")
        end = text.index("@@", start + 2)
        text = text[:start] + f"%({text[start + 2:end]})s" + text[end + 2 :]
    return text + "\n"


def _pod_target(kind_prefix: str) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"namespace": NAMESPACE, "name": f"@@{kind_prefix}name@@", "uid": f"@@{kind_prefix}uid@@"}}


@dataclass
class FrameSource:
    """Renders the list bodies and watch frames of one scenario."""

    scenario: Scenario
    _templates: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        event = objects.event(_pod_target("t"), "@@name@@", uid="@@uid@@", resource_version="@@rv@@")
        failing = objects.event(
            _pod_target("t"),
            "@@name@@",
            reason="BackOff",
            message="Back-off restarting failed container dev in pod @@tname@@",
            event_type="Warning",
            uid="@@uid@@",
            resource_version="@@rv@@",
        )
        app = objects.app_pod("@@name@@", NAMESPACE, 0, uid="@@uid@@", resource_version="@@rv@@", with_status=True)
        workspace = objects.workspace_pod("@@name@@", NAMESPACE, "@@token@@", uid="@@uid@@", resource_version="@@rv@@")
        workspace["status"] = objects.running_status(["dev"], restarts=-1, finished_at="@@finished@@")
        workspace["status"]["containerStatuses"][0]["restartCount"] = "@@restarts@@"
        self._templates = {
            "irrelevant_event": _template(event),
            "line_event": _template(failing),
            "irrelevant_pod": _template(app),
            "line_status": _template(workspace, numbers=("restarts",)),
        }

    # Lists ---------------------------------------------------------------------------

    def list_items(self, path: str) -> list[dict[str, Any]]:
        """Return every object of the collection at `path` before the watch starts."""
        if path != PODS_PATH:
            return []
        items = [
            objects.workspace_pod(f"ws-{i}", NAMESPACE, token_of(i), uid=uid_of(1, i), resource_version="1")
            for i in range(self.scenario.workspace_pods)
        ]
        items += [
            objects.app_pod(f"app-{i}", NAMESPACE, i, uid=uid_of(2, i), resource_version="1", with_status=True)
            for i in range(self.scenario.app_pods)
        ]
        return items

    # Watches -------------------------------------------------------------------------

    def frame_count(self, path: str) -> int:
        return sum(self.scenario.counts.get(category, 0) for category in self._categories(path))

    def writes(self, path: str) -> Iterator[bytes]:
        """Render the frames of the watch at `path`, joined into writes of `FRAMES_PER_WRITE`."""
        batch: list[str] = []
        for frame in self._frames(path):
            batch.append(frame)
            if len(batch) == FRAMES_PER_WRITE:
                yield "".join(batch).encode()
                batch = []
        if batch:
            yield "".join(batch).encode()

    @staticmethod
    def _categories(path: str) -> tuple[str, str]:
        if path == EVENTS_PATH:
            return ("irrelevant_event", "line_event")
        if path == PODS_PATH:
            return ("irrelevant_pod", "line_status")
        return ("", "")

    def _frames(self, path: str) -> Iterator[str]:
        dropped_kind, line_kind = self._categories(path)
        counts = self.scenario.counts
        sequence = _interleave(counts.get(dropped_kind, 0), counts.get(line_kind, 0))
        seen = {dropped_kind: 0, line_kind: 0}
        for version, is_line in enumerate(sequence, start=2):
            category = line_kind if is_line else dropped_kind
            number = seen[category]
            seen[category] += 1
            yield self._templates[category] % self._fields(category, number, version)

    def _fields(self, category: str, number: int, version: int) -> dict[str, Any]:
        scenario = self.scenario
        if category == "irrelevant_event":
            target = number % scenario.app_pods
            return {
                "type": "ADDED", "name": f"app-{target}.{number:x}", "uid": uid_of(3, number),
                "rv": str(version), "tname": f"app-{target}", "tuid": uid_of(2, target),
            }
        if category == "line_event":
            target = number % scenario.workspace_pods
            return {
                "type": "ADDED", "name": f"ws-{target}.{number:x}", "uid": uid_of(4, number),
                "rv": str(version), "tname": f"ws-{target}", "tuid": uid_of(1, target),
            }
        if category == "irrelevant_pod":
            target = number % scenario.app_pods
            return {"type": "MODIFIED", "name": f"app-{target}", "uid": uid_of(2, target), "rv": str(version)}
        target = number % scenario.workspace_pods
        restarts = number // scenario.workspace_pods + 1
        return {
            "type": "MODIFIED", "name": f"ws-{target}", "uid": uid_of(1, target), "rv": str(version),
            "token": token_of(target), "restarts": restarts,
            "finished": f"2026-01-01T{10 + restarts // 3600 % 10:02d}:{restarts // 60 % 60:02d}:{restarts % 60:02d}Z",
        }


def _interleave(dropped: int, lines: int) -> Iterator[bool]:
    """Yield `dropped` times False and `lines` times True, with the Trues spread evenly."""
    total = dropped + lines
    emitted = 0
    for position in range(total):
        # True whenever the share of lines so far falls behind the target share.
        if lines and (emitted + 1) * total <= (position + 1) * lines:
            emitted += 1
            yield True
        else:
            yield False
