"""The sink the correlator feeds when leader election is on: send when leading, hold when not.

    correlator --submit--> LeadershipGate --(leading)--> dispatcher --> Coder
                                          \\--(following)--> held lines, per agent

A follower runs the same watches and correlator as the leader, so it produces the same
lines. It keeps them, a bounded number per agent, and drops those the leader's
checkpoint covers each time it re-reads it (`prune`). On takeover (`take_over`) the held
lines the checkpoint does not cover are submitted in their order, before any new line,
and from then on lines go straight to the dispatcher. On losing the lease (`hold`) the
dispatcher is paused and lines are held again.

Ownership: the gate's state changes only inside its own methods. They never await, so
each runs whole between two steps of the correlator, and no lock is needed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from logstream.lines import AgentToken, LogLine
from logstream.ops.metrics import Metrics

log = logging.getLogger("logstream.ha")

Covers = Callable[[str], bool]


class Delivery(Protocol):
    """The dispatcher as the gate uses it."""

    def submit(self, line: LogLine) -> None: ...

    def release(self, token: AgentToken) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Takeover:
    """Counts of the held lines at a takeover."""

    covered: int  # dropped because the checkpoint covers them
    sent: int  # submitted for sending
    agents: int


class LeadershipGate:
    """A `LineSink` that forwards to the dispatcher while leading and keeps lines otherwise."""

    def __init__(self, delivery: Delivery, *, max_held_per_agent: int, metrics: Metrics) -> None:
        self._delivery = delivery
        self._max_held = max_held_per_agent
        self._metrics = metrics
        self._leading = False
        self._held: dict[AgentToken, deque[LogLine]] = {}
        # Agents whose last object went away while following: released after takeover.
        self._released: set[AgentToken] = set()
        self._held_count = 0

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def held_lines(self) -> int:
        return self._held_count

    def submit(self, line: LogLine) -> None:
        if self._leading:
            self._delivery.submit(line)
            return
        self._released.discard(line.token)
        held = self._held.get(line.token)
        if held is None:
            held = self._held[line.token] = deque()
        if len(held) >= self._max_held:
            held.popleft()
            self._held_count -= 1
            self._metrics.held_lines_evicted.inc()
        held.append(line)
        self._held_count += 1
        self._metrics.held_lines.set(self._held_count)

    def release(self, token: AgentToken) -> None:
        if self._leading:
            self._delivery.release(token)
        elif token in self._held:
            self._released.add(token)

    def prune(self, covers: Covers) -> int:
        """Drop held lines whose signal `covers` accepts; how many were dropped."""
        dropped = 0
        for token in list(self._held):
            lines = self._held[token]
            kept = deque(line for line in lines if not (line.signal and covers(line.signal)))
            dropped += len(lines) - len(kept)
            if kept:
                self._held[token] = kept
            else:
                del self._held[token]
                self._released.discard(token)
        self._held_count -= dropped
        self._metrics.held_lines.set(self._held_count)
        return dropped

    def take_over(self, covers: Covers) -> Takeover:
        """Submit the held lines `covers` rejects, in order, then send directly."""
        covered = self.prune(covers)
        sent = 0
        agents = len(self._held)
        for token, lines in self._held.items():
            for line in lines:
                self._delivery.submit(line)
            sent += len(lines)
            if token in self._released:
                self._delivery.release(token)
        self._held.clear()
        self._released.clear()
        self._held_count = 0
        self._metrics.held_lines.set(0)
        self._metrics.takeover_lines.labels(outcome="covered").inc(covered)
        self._metrics.takeover_lines.labels(outcome="sent").inc(sent)
        self._leading = True
        self._delivery.resume()
        return Takeover(covered=covered, sent=sent, agents=agents)

    def hold(self) -> None:
        """Stop sending at once and keep new lines here.

        NOTE: lines already handed to the dispatcher stay queued there, paused. If this
        replica leads again they are sent, even when another leader delivered them in
        between; the dispatcher offers no way to take them back.
        """
        self._delivery.pause()
        if self._leading:
            log.info("holding lines until this replica leads again")
        self._leading = False


__all__ = ["Covers", "Delivery", "LeadershipGate", "Takeover"]
