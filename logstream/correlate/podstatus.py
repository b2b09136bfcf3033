"""Signals that live only in pod status: container waits, terminations, eviction,
unschedulable and disruption conditions.

An OOM kill produces no event, and the kubelet's spam filter silences long crash loops,
so status is diffed between consecutive versions of a pod. `PodStatusMemory` holds the
little that must be remembered per pod; `observe()` returns the signals that are new
since the last version and updates the memory. Each signal is reported once: a waiting
reason again only after the container has been ready in between, a termination once per
(restart count, finish time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logstream.correlate.severity import waiting_level
from logstream.lines import Level

# Waiting reasons worth a line; ContainerCreating and PodInitializing are normal progress.
WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
        "RunContainerError",
        "PreCreateHookError",
        "PostStartHookError",
    }
)


@dataclass(frozen=True, slots=True)
class StatusSignal:
    key: str  # stable identity of the signal within the pod, for de-duplication records
    level: Level
    text: str
    time_text: str = ""  # RFC 3339 of when it happened, when the status says


@dataclass(slots=True)
class _ContainerMemory:
    waiting_shown: set[str] = field(default_factory=set)
    last_termination: tuple[int, str] = (0, "")


@dataclass(slots=True)
class PodStatusMemory:
    containers: dict[str, _ContainerMemory] = field(default_factory=dict)
    conditions_shown: set[str] = field(default_factory=set)
    evicted: bool = False

    def observe(self, status: Any) -> list[StatusSignal]:
        """Signals new in `status` since the previous call, in a stable order."""
        if not isinstance(status, dict):
            return []
        signals: list[StatusSignal] = []
        for kind, items in (
            ("init container", status.get("initContainerStatuses")),
            ("container", status.get("containerStatuses")),
        ):
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    signals += self._container(kind, item)
        signals += self._conditions(status.get("conditions"))
        signals += self._phase(status)
        return signals

    def _container(self, kind: str, item: dict[str, Any]) -> list[StatusSignal]:
        name = item["name"]
        memory = self.containers.setdefault(f"{kind}/{name}", _ContainerMemory())
        signals = []

        termination = _termination(kind, item)
        if termination is not None:
            signature, signal = termination
            if signature > memory.last_termination:
                memory.last_termination = signature
                signals.append(signal)

        state = _dict(item.get("state"))
        waiting = state.get("waiting") if isinstance(state.get("waiting"), dict) else None
        if waiting is not None:
            reason = str(waiting.get("reason") or "")
            if reason in WAITING_REASONS and reason not in memory.waiting_shown:
                memory.waiting_shown.add(reason)
                message = str(waiting.get("message") or "")
                text = f"{kind.capitalize()} {name} is waiting: {reason}"
                signals.append(
                    StatusSignal(
                        f"{kind}/{name}/waiting/{reason}",
                        waiting_level(reason, message),
                        text + (f": {message}" if message else ""),
                    )
                )
        elif item.get("ready") is True:
            # It made it: a later failure of the same kind is news again.
            memory.waiting_shown.clear()
        return signals

    def _conditions(self, conditions: Any) -> list[StatusSignal]:
        signals = []
        for condition in conditions if isinstance(conditions, list) else []:
            if not isinstance(condition, dict):
                continue
            kind, state = condition.get("type"), condition.get("status")
            reason = str(condition.get("reason") or "")
            message = str(condition.get("message") or "")
            if kind == "PodScheduled" and state == "False" and reason == "Unschedulable":
                text = f"Pod cannot be scheduled: {message or reason}"
            elif kind == "DisruptionTarget" and state == "True":
                text = f"Pod is being disrupted ({reason}): {message or 'no details'}"
            else:
                continue
            key = f"condition/{kind}/{reason}/{message}"
            if key not in self.conditions_shown:
                self.conditions_shown.add(key)
                since = str(condition.get("lastTransitionTime") or "")
                signals.append(StatusSignal(key, Level.WARN, text, since))
        return signals

    def _phase(self, status: dict[str, Any]) -> list[StatusSignal]:
        evicted = status.get("phase") == "Failed" and status.get("reason") == "Evicted"
        if evicted and not self.evicted:
            self.evicted = True
            message = str(status.get("message") or "")
            text = f"Pod was evicted: {message}" if message else "Pod was evicted"
            return [StatusSignal("phase/Evicted", Level.WARN, text)]
        return []


def _termination(kind: str, item: dict[str, Any]) -> tuple[tuple[int, str], StatusSignal] | None:
    """The latest termination in a container status, with its identity."""
    count = item.get("restartCount")
    restarts = count if isinstance(count, int) else 0
    for place in ("lastState", "state"):
        holder = item.get(place)
        terminated = holder.get("terminated") if isinstance(holder, dict) else None
        if not isinstance(terminated, dict):
            continue
        reason = str(terminated.get("reason") or "Terminated")
        exit_code = terminated.get("exitCode")
        if reason == "Completed" and exit_code == 0:
            return None
        finished = str(terminated.get("finishedAt") or "")
        name = item["name"]
        text = (
            f"{kind.capitalize()} {name} terminated: {reason} (exit code {exit_code}), "
            f"restart count {restarts}"
        )
        message = str(terminated.get("message") or "").strip()
        if message:
            text += f": {message}"
        signal = StatusSignal(
            f"{kind}/{name}/terminated/{restarts}/{finished}", Level.WARN, text, finished
        )
        return (restarts, finished), signal
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
