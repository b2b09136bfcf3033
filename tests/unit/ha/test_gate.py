"""The leadership gate: hold while following, hand over exactly the uncovered lines."""

from __future__ import annotations

from datetime import datetime, timezone

from logstream.ha.gate import LeadershipGate
from logstream.lines import AgentToken, Level, LogLine
from logstream.ops.metrics import Metrics

A, B = AgentToken("token-a"), AgentToken("token-b")
AT = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)


def line(token: AgentToken, signal: str) -> LogLine:
    return LogLine(token, Level.INFO, signal, AT, signal)


def gate_for(delivery, max_held=100, metrics=None) -> LeadershipGate:
    gate = LeadershipGate(delivery, max_held_per_agent=max_held, metrics=metrics or Metrics())
    gate.hold()
    return gate


def test_a_follower_holds_lines_and_sends_nothing(delivery):
    gate = gate_for(delivery)
    gate.submit(line(A, "created/p1"))
    gate.release(A)

    assert delivery.submitted == []
    assert delivery.released == []
    assert delivery.paused
    assert gate.held_lines == 1


def test_takeover_sends_the_uncovered_lines_in_order_then_sends_directly(delivery):
    gate = gate_for(delivery)
    for signal in ("created/p1", "event/e1/1", "event/e1/2", "event/e1/3"):
        gate.submit(line(A, signal))
    gate.submit(line(B, "created/p2"))
    delivered = {"created/p1", "event/e1/1", "event/e1/2"}

    result = gate.take_over(delivered.__contains__)
    gate.submit(line(A, "event/e1/4"))

    assert (result.covered, result.sent, result.agents) == (3, 2, 2)
    assert delivery.texts() == ["event/e1/3", "created/p2", "event/e1/4"]
    assert delivery.calls == ["pause", "resume"]
    assert gate.leading
    assert gate.held_lines == 0


def test_an_agent_released_while_following_is_released_after_its_lines(delivery):
    gate = gate_for(delivery)
    gate.submit(line(A, "deleted/p1"))
    gate.release(A)
    gate.submit(line(B, "created/p2"))
    gate.release(B)
    gate.submit(line(B, "created/p3"))  # the token is in use again: no release

    gate.take_over(lambda signal: False)

    assert delivery.texts() == ["deleted/p1", "created/p2", "created/p3"]
    assert delivery.released == [A]


def test_pruning_drops_what_the_leader_delivered(delivery):
    metrics = Metrics()
    gate = gate_for(delivery, metrics=metrics)
    gate.submit(line(A, "created/p1"))
    gate.submit(line(A, "event/e1/1"))
    gate.release(A)

    assert gate.prune({"created/p1", "event/e1/1"}.__contains__) == 2
    assert gate.held_lines == 0
    assert metrics.held_lines._value.get() == 0
    gate.take_over(lambda signal: False)
    assert delivery.submitted == []
    assert delivery.released == []


def test_held_lines_are_bounded_per_agent_keeping_the_newest(delivery):
    metrics = Metrics()
    gate = gate_for(delivery, max_held=3, metrics=metrics)
    for n in range(1, 6):
        gate.submit(line(A, f"event/e1/{n}"))
    gate.submit(line(B, "created/p2"))

    assert gate.held_lines == 4
    assert metrics.held_lines_evicted._value.get() == 2
    gate.take_over(lambda signal: False)
    assert delivery.texts() == ["event/e1/3", "event/e1/4", "event/e1/5", "created/p2"]


def test_losing_the_lease_pauses_delivery_and_holds_again(delivery):
    gate = gate_for(delivery)
    gate.take_over(lambda signal: False)
    gate.hold()
    gate.submit(line(A, "created/p1"))

    assert delivery.paused
    assert not gate.leading
    assert delivery.submitted == []
    assert gate.held_lines == 1


def test_lines_without_a_signal_are_never_taken_as_delivered(delivery):
    gate = gate_for(delivery)
    gate.submit(line(A, ""))
    gate.take_over(lambda signal: True)

    assert len(delivery.submitted) == 1
