"""Prometheus metrics of the controller.

Every metric lives on a registry passed in, so tests use a fresh one. Label values are
bounded sets (HTTP method and status, resource kind, drop cause, level): never a token,
a pod name or a namespace.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "coder_logstream"

# Drop causes, the only values of the `cause` label.
DROP_UNAUTHORIZED = "unauthorized"  # token still rejected after the provisioning window
DROP_OVERFLOW = "overflow"  # Coder answered 413: the agent's log budget is spent
DROP_REJECTED = "rejected"  # Coder answered 400 for the batch
DROP_BUFFER_FULL = "buffer_full"  # the agent's bounded queue overflowed
DROP_SHUTDOWN = "shutdown"  # still queued when the shutdown deadline passed

# Results of a checkpoint write, the only values of its `result` label.
CHECKPOINT_WRITTEN = "written"
CHECKPOINT_CONFLICT = "conflict"  # 409: another replica wrote first; merged and retried
CHECKPOINT_FAILED = "failed"  # any other error; retried at the next interval


class Metrics:
    """All metrics the controller exports, created on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        # Name kept from the Go implementation so existing dashboards keep working.
        self.requests = Counter(
            f"{PREFIX}_requests", "Requests made to Coder.", ["method", "status"], registry=r
        )
        self.request_seconds = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Duration of requests to Coder.",
            ["method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.lines_produced = Counter(
            f"{PREFIX}_lines_produced", "Log lines produced for agents.", ["level"], registry=r
        )
        self.lines_sent = Counter(
            f"{PREFIX}_lines_sent", "Log lines Coder accepted.", registry=r
        )
        self.lines_dropped = Counter(
            f"{PREFIX}_lines_dropped", "Log lines given up on.", ["cause"], registry=r
        )
        self.agents_active = Gauge(
            f"{PREFIX}_agents_active", "Agents with a sender task.", registry=r
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth", "Lines waiting to be sent, all agents together.", registry=r
        )
        self.watch_restarts = Counter(
            f"{PREFIX}_watch_restarts",
            "Watch restarts by resource and cause.",
            ["resource", "cause"],
            registry=r,
        )
        self.kube_changes = Counter(
            f"{PREFIX}_kube_changes",
            "Watch changes received from Kubernetes, by resource and type.",
            ["resource", "type"],
            registry=r,
        )
        self.watchers_synced = Gauge(
            f"{PREFIX}_watchers_synced", "Watchers that finished their initial list.", registry=r
        )
        self.workspace_objects = Gauge(
            f"{PREFIX}_workspace_objects", "Tracked objects that carry an agent token.", registry=r
        )
        self.is_leader = Gauge(
            f"{PREFIX}_is_leader", "1 when this replica sends to Coder.", registry=r
        )
        self.leader_transitions = Counter(
            f"{PREFIX}_leader_transitions",
            "Times this replica became the leader.",
            registry=r,
        )
        self.checkpoint_writes = Counter(
            f"{PREFIX}_checkpoint_writes",
            "Writes of the delivery checkpoint, by result.",
            ["result"],
            registry=r,
        )
        self.checkpoint_bytes = Gauge(
            f"{PREFIX}_checkpoint_bytes",
            "Size of the delivery checkpoint last written or read.",
            registry=r,
        )
        self.held_lines = Gauge(
            f"{PREFIX}_held_lines",
            "Lines a follower holds in case it takes over, all agents together.",
            registry=r,
        )
        self.held_lines_evicted = Counter(
            f"{PREFIX}_held_lines_evicted",
            "Held lines pushed out by the per-agent bound before the checkpoint covered them.",
            registry=r,
        )
        self.takeover_lines = Counter(
            f"{PREFIX}_takeover_lines",
            "Held lines at a takeover: covered by the checkpoint (dropped) or sent.",
            ["outcome"],
            registry=r,
        )
