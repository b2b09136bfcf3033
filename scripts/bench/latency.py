"""Benchmark 3: delivery latency and request economy, real process end to end.

The test bed, `logstream-kube` (default delivery settings) and the fake Coder run as
separate processes on 127.0.0.1. Workspace pods exist before the controller starts.

* Steady: `latency_events_per_second` events per second for `latency_seconds`, round
  robin over `latency_workspaces` workspace pods. Each event's message carries its
  sequence number; the benchmark notes `time.monotonic()` right after the create
  request returns.
* Bursts: for each count in `burst_workspaces`, `burst_events` events for that many
  other workspace pods, created as fast as the API server takes them.

The fake Coder records `time.monotonic()` when each request arrives and stores the
lines of a token in arrival order. Lines of a token arrive in order, one PATCH at a
time, so the k-th stored line came with the PATCH whose cumulative `log_count` first
reaches k. Both processes read the same system-wide monotonic clock, so latency is
that request's arrival time minus the event's create time.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scripts.bench import Sizes, objects
from scripts.bench.report import Table
from scripts.bench.testbed import (
    ControllerProcess,
    KubeLoader,
    percentile,
    started_cluster,
)
from tests.integration.harness import FakeCoder
from tests.testbed.cluster import TestCluster

NAMESPACE = "bench-latency"
LOGS_PATH = "/api/v2/workspaceagents/me/logs"
LOG_SOURCE_PATH = "/api/v2/workspaceagents/me/log-source"
BURST_CONCURRENCY = 24
DRAIN_TIMEOUT_SECONDS = 60.0
_SEQUENCE = re.compile(r"bench ([a-z0-9-]+) seq=(\d+)")
TARGET_P99_MS = 300.0
TARGET_LINES_PER_REQUEST = 20.0


@dataclass
class Phase:
    name: str
    tokens: list[str]
    sent_at: dict[int, float] = field(default_factory=dict)
    written_at: dict[int, float] = field(default_factory=dict)
    create_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0


async def _create_event(loader: KubeLoader, phase: Phase, pod: dict[str, Any], seq: int) -> None:
    body = objects.event(
        pod, f"{pod['metadata']['name']}.{phase.name}-{seq}", reason="BackOff",
        message=f"bench {phase.name} seq={seq}", event_type="Warning",
    )
    phase.sent_at[seq] = time.monotonic()
    await loader.create(f"/api/v1/namespaces/{NAMESPACE}/events", body)
    phase.written_at[seq] = time.monotonic()
    phase.create_seconds.append(phase.written_at[seq] - phase.sent_at[seq])


async def _steady(loader: KubeLoader, phase: Phase, pods: list[dict[str, Any]], rate: float, seconds: float) -> None:
    """Start one create every 1/rate seconds on an absolute schedule, never waiting for replies."""
    tasks = []
    started = time.monotonic()
    total = int(rate * seconds)
    for seq in range(total):
        delay = started + seq / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_create_event(loader, phase, pods[seq % len(pods)], seq)))
    await asyncio.gather(*tasks)
    phase.seconds = time.monotonic() - started


async def _burst(loader: KubeLoader, phase: Phase, pods: list[dict[str, Any]], count: int) -> None:
    sequence = iter(range(count))

    async def worker() -> None:
        for seq in sequence:
            await _create_event(loader, phase, pods[seq % len(pods)], seq)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(BURST_CONCURRENCY)))
    phase.seconds = time.monotonic() - started


def _stored_count(coder: FakeCoder, tokens: list[str]) -> int:
    return sum(len(coder.lines(token)) for token in tokens)


async def _wait_for_lines(coder: FakeCoder, phases: list[Phase]) -> None:
    expected = sum(len(phase.written_at) for phase in phases)
    tokens = [token for phase in phases for token in phase.tokens]
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while await asyncio.to_thread(_stored_count, coder, tokens) < expected:
        if time.monotonic() > deadline:
            break  # the table shows the shortfall
        await asyncio.sleep(0.5)


@dataclass
class PhaseResult:
    latencies_ms: list[float]
    # From the start of the create request instead of its end: an upper bound.
    latencies_from_send_ms: list[float]
    lines: int
    patches: int
    registrations: int
    missing: int
    duplicates: int


def _analyse(phase: Phase, coder: FakeCoder, requests: list[dict[str, Any]]) -> PhaseResult:
    latencies: list[float] = []
    from_send: list[float] = []
    seen: set[int] = set()
    duplicates = patches = registrations = lines_total = 0
    for token in phase.tokens:
        accepted = [r for r in requests if r["token"] == token and r["status"] == 200 and r["path"] == LOGS_PATH]
        registrations += sum(1 for r in requests if r["token"] == token and r["path"] == LOG_SOURCE_PATH)
        patches += len(accepted)
        arrivals = [r["arrived_at"] for r in accepted for _ in range(r["log_count"])]
        lines = coder.lines(token)
        lines_total += len(lines)
        for position, line in enumerate(lines):
            match = _SEQUENCE.search(line["output"])
            if match is None or match.group(1) != phase.name or position >= len(arrivals):
                continue
            seq = int(match.group(2))
            if seq in seen:
                duplicates += 1
                continue
            seen.add(seq)
            latencies.append((arrivals[position] - phase.written_at[seq]) * 1000)
            from_send.append((arrivals[position] - phase.sent_at[seq]) * 1000)
    return PhaseResult(latencies, from_send, lines_total, patches, registrations, len(phase.written_at) - len(seen), duplicates)


async def run(sizes: Sizes) -> tuple[list[Table], str]:
    steady = Phase("steady", [str(uuid.uuid4()) for _ in range(sizes.latency_workspaces)])
    bursts = [
        Phase(f"burst-{count}", [str(uuid.uuid4()) for _ in range(count)]) for count in sizes.burst_workspaces
    ]
    with tempfile.TemporaryDirectory(prefix="logstream-bench-latency-") as tmp:
        workdir = Path(tmp)
        coder = FakeCoder(workdir)
        try:
            async with started_cluster() as cluster:
                kube_version = cluster.kube_version
                results = await _run_phases(sizes, cluster, workdir, coder, steady, bursts)
        finally:
            coder.stop()
    return [_table(sizes, [steady, *bursts], results)], kube_version


async def _run_phases(
    sizes: Sizes, cluster: TestCluster, workdir: Path, coder: FakeCoder, steady: Phase, bursts: list[Phase]
) -> dict[str, PhaseResult]:
    assert cluster.admin_kubeconfig is not None
    loader = KubeLoader(cluster)
    controller = None
    phases = [steady, *bursts]
    try:
        await loader.create_namespace(NAMESPACE)
        pods: dict[str, list[dict[str, Any]]] = {}
        for phase in phases:
            for token in phase.tokens:
                coder.add_agent(token)
            created, _ = await loader.create_many(
                lambda body: f"/api/v1/namespaces/{NAMESPACE}/pods",
                (objects.workspace_pod(f"ws-{phase.name}-{i}", NAMESPACE, token) for i, token in enumerate(phase.tokens)),
            )
            pods[phase.name] = created

        controller = ControllerProcess.start(
            kubeconfig=cluster.admin_kubeconfig, log_path=workdir / "controller.log",
            args=["--coder-url", coder.url, "--namespaces", NAMESPACE, "--log-level", "warning"],
        )
        await controller.wait_ready()
        await _steady(loader, steady, pods[steady.name], sizes.latency_events_per_second, sizes.latency_seconds)
        for burst in bursts:
            await _burst(loader, burst, pods[burst.name], sizes.burst_events)
            # Let the burst's lines leave before the next phase starts.
            await _wait_for_lines(coder, [burst])
        await _wait_for_lines(coder, phases)
        if controller.process.poll() is not None:
            raise RuntimeError(f"logstream-kube exited:\n{controller.log_tail()}")
    finally:
        if controller is not None:
            controller.stop()
        await loader.aclose()

    async with httpx.AsyncClient(base_url=coder.url, timeout=30) as client:
        requests = (await client.get("/_test/requests")).json()
    return {phase.name: _analyse(phase, coder, requests) for phase in phases}


def _table(sizes: Sizes, phases: list[Phase], results: dict[str, PhaseResult]) -> Table:
    table = Table(
        "latency",
        "Event written to the API server -> line stored by the fake Coder (real processes, default delivery settings)",
        ["phase", "workspaces", "events", "events/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "p99 ms from send",
         "PATCH requests", "lines per request", "missing", "duplicates"],
    )
    for phase in phases:
        result = results[phase.name]
        latencies = result.latencies_ms
        table.add(
            phase.name, len(phase.tokens), len(phase.written_at), len(phase.written_at) / phase.seconds,
            percentile(latencies, 0.50), percentile(latencies, 0.95), percentile(latencies, 0.99),
            max(latencies, default=float("nan")), percentile(result.latencies_from_send_ms, 0.99),
            result.patches, result.lines / max(1, result.patches), result.missing, result.duplicates,
        )
        table.data.append({"phase": phase.name, "events": len(phase.written_at), "seconds": phase.seconds,
                           "latencies_ms": sorted(latencies), "patches": result.patches, "lines": result.lines,
                           "registrations": result.registrations, "missing": result.missing,
                           "duplicates": result.duplicates, "create_ms": sorted(s * 1000 for s in phase.create_seconds)})
    creates = [s * 1000 for s in phases[0].create_seconds]
    table.notes.append(
        f"steady: target {sizes.latency_events_per_second:g} events/s for {sizes.latency_seconds:g} s, one create started "
        f"every {1000 / sizes.latency_events_per_second:g} ms; create round trip p50 {percentile(creates, 0.5):.1f} ms, "
        f"p99 {percentile(creates, 0.99):.1f} ms. Bursts: {sizes.burst_events:,} events each, {BURST_CONCURRENCY} creates in flight."
    )
    registrations = sum(result.registrations for result in results.values())
    agents = sum(len(phase.tokens) for phase in phases)
    table.notes.append(
        f"log-source registrations: {registrations} for {agents} agents. "
        f"Targets: p99 <= {TARGET_P99_MS:g} ms; >= {TARGET_LINES_PER_REQUEST:g} lines per request under burst."
    )
    return table
