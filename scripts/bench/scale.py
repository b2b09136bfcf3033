"""Benchmarks 2 and 4: memory at cluster scale, and time to ready.

Against a real API server (the test bed), in four steps that only add objects:

0. empty: only the benchmark's namespaces exist;
1. small: 100 workspace pods and `app_pods_small` non-workspace pods;
2. large: `app_pods_large` non-workspace pods;
3. events: `events` core/v1 events in the same namespaces (1 % about workspace pods).

After each step `logstream-kube --dry-run` starts as a new process `controller_runs`
times. Each run reports the seconds from process start to `/readyz` 200, then RSS
(VmRSS) after `SETTLE_SECONDS`, and peak RSS (VmHWM). The median run counts. Bytes per
extra pod is the RSS difference between steps 2 and 1 divided by the extra pods; bytes
per event the difference between steps 3 and 2 divided by the events.

At step 3 the last controller keeps running through `churn_seconds` of churn: new
events and event repeats, pod status updates, pods replaced, workspace pods replaced.
RSS is sampled every `CHURN_SAMPLE_SECONDS`.

The controller watches the whole cluster (no --namespaces), as the default install does.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.bench import Sizes, objects
from scripts.bench.report import Table
from scripts.bench.testbed import (
    ControllerProcess,
    KubeLoader,
    namespaced,
    started_cluster,
)

APP_NAMESPACES = tuple(f"bench-apps-{i}" for i in range(4))
WORKSPACE_NAMESPACE = "bench-ws"
SETTLE_SECONDS = 5.0
CHURN_SAMPLE_SECONDS = 10.0
CHURN_TICK_SECONDS = 0.1
# Writes per second during churn, by kind. About 50 writes per second in all.
CHURN_RATES = {
    "new irrelevant event": 20.0,
    "event repeat (count + 1)": 10.0,
    "pod status update": 10.0,
    "pod replaced (delete + create)": 2.0,
    "new workspace event": 2.0,
    "workspace pod replaced": 0.2,
}
WORKSPACE_EVENT_SHARE = 0.01
TARGET_RSS_MIB = 80
TARGET_BYTES_PER_POD = 1024
TARGET_READY_SECONDS = 5.0


@dataclass
class StepResult:
    step: str
    app_pods: int
    events: int
    ready_seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    peak_kib: list[int] = field(default_factory=list)

    @property
    def rss_median_kib(self) -> float:
        return statistics.median(self.rss_kib)


@dataclass
class ClusterState:
    workspace_pods: list[dict[str, Any]] = field(default_factory=list)
    app_pods: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    create_seconds: dict[str, tuple[int, float]] = field(default_factory=dict)


def _ref(obj: dict[str, Any]) -> dict[str, Any]:
    """The part of a created object that events and churn need."""
    meta = obj["metadata"]
    return {"kind": obj["kind"], "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]}}


async def _add_app_pods(loader: KubeLoader, state: ClusterState, up_to: int, label: str) -> None:
    start = len(state.app_pods)
    bodies = (
        objects.app_pod(f"app-{i}", APP_NAMESPACES[i % len(APP_NAMESPACES)], i) for i in range(start, up_to)
    )
    created, seconds = await loader.create_many(namespaced("pods"), bodies)
    state.app_pods += [_ref(obj) for obj in created]
    state.create_seconds[label] = (len(created), seconds)


async def _add_workspace_pods(loader: KubeLoader, state: ClusterState, count: int) -> None:
    bodies = (objects.workspace_pod(f"ws-{i}", WORKSPACE_NAMESPACE, str(uuid.uuid4())) for i in range(count))
    created, seconds = await loader.create_many(namespaced("pods"), bodies)
    state.workspace_pods += [_ref(obj) for obj in created]
    state.create_seconds["workspace pods"] = (len(created), seconds)


async def _add_events(loader: KubeLoader, state: ClusterState, count: int) -> None:
    rng = random.Random(7)

    def bodies() -> Any:
        for i in range(count):
            pool = state.workspace_pods if rng.random() < WORKSPACE_EVENT_SHARE else state.app_pods
            target = pool[i % len(pool)]
            yield objects.event(target, f"{target['metadata']['name']}.{i:x}", count=1 + i % 3)

    created, seconds = await loader.create_many(namespaced("events"), bodies())
    state.events += [_ref(obj) for obj in created]
    state.create_seconds["events"] = (len(created), seconds)


async def _measure_step(
    step: StepResult, kubeconfig: Path, workdir: Path, runs: int, *, keep_last: bool
) -> ControllerProcess | None:
    """Start the controller `runs` times; return the last one still running if `keep_last`."""
    kept = None
    for run in range(runs):
        controller = ControllerProcess.start(
            kubeconfig=kubeconfig, log_path=workdir / f"controller-{step.step}-{run}.log",
            args=["--dry-run", "--log-level", "warning"],
        )
        try:
            step.ready_seconds.append(await controller.wait_ready())
            await asyncio.sleep(SETTLE_SECONDS)
            rss, peak = controller.memory_kib()
            step.rss_kib.append(rss)
            step.peak_kib.append(peak)
        except BaseException:
            controller.stop()
            raise
        if keep_last and run == runs - 1:
            kept = controller
        else:
            controller.stop()
    return kept


class _Churn:
    """Writes at `CHURN_RATES` for a while, as a busy cluster does."""

    def __init__(self, loader: KubeLoader, state: ClusterState) -> None:
        self._loader = loader
        self._state = state
        self._rng = random.Random(11)
        self._serial = 0
        self.done: dict[str, int] = {kind: 0 for kind in CHURN_RATES}
        self.errors = 0

    async def run(self, seconds: float, controller: ControllerProcess) -> list[tuple[float, int]]:
        """Churn for `seconds`; RSS samples as (seconds since start, KiB)."""
        samples: list[tuple[float, int]] = []
        credit = {kind: 0.0 for kind in CHURN_RATES}
        started = time.perf_counter()
        next_sample = 0.0
        while (elapsed := time.perf_counter() - started) < seconds:
            if elapsed >= next_sample:
                samples.append((elapsed, controller.memory_kib()[0]))
                next_sample += CHURN_SAMPLE_SECONDS
            tick_started = time.perf_counter()
            operations = []
            for kind, rate in CHURN_RATES.items():
                credit[kind] += rate * CHURN_TICK_SECONDS
                while credit[kind] >= 1:
                    credit[kind] -= 1
                    operations.append(self._one(kind))
            for outcome in await asyncio.gather(*operations, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    self.errors += 1
            await asyncio.sleep(max(0.0, CHURN_TICK_SECONDS - (time.perf_counter() - tick_started)))
        samples.append((time.perf_counter() - started, controller.memory_kib()[0]))
        return samples

    async def _one(self, kind: str) -> None:
        self._serial += 1
        serial, state, loader, rng = self._serial, self._state, self._loader, self._rng
        if kind == "new irrelevant event":
            target = rng.choice(state.app_pods)
            await loader.create(namespaced("events")(target), objects.event(target, f"churn.{serial:x}", reason="Unhealthy", message="Readiness probe failed: HTTP probe failed with statuscode: 503", event_type="Warning"))
        elif kind == "event repeat (count + 1)":
            event = rng.choice(state.events)
            meta = event["metadata"]
            await loader.patch(f"/api/v1/namespaces/{meta['namespace']}/events/{meta['name']}", {"count": 3 + serial, "lastTimestamp": objects.CREATED_AT})
        elif kind == "pod status update":
            pod = rng.choice(state.app_pods)
            meta = pod["metadata"]
            status = objects.running_status(["app", "proxy"], restarts=serial % 5, finished_at=objects.CREATED_AT)
            await loader.patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", {"status": status})
        elif kind == "pod replaced (delete + create)":
            index = rng.randrange(len(state.app_pods))
            meta = state.app_pods[index]["metadata"]
            await loader.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}")
            created = await loader.create(f"/api/v1/namespaces/{meta['namespace']}/pods", objects.app_pod(f"app-r{serial}", meta["namespace"], serial))
            state.app_pods[index] = _ref(created)
        elif kind == "new workspace event":
            target = rng.choice(state.workspace_pods)
            await loader.create(namespaced("events")(target), objects.event(target, f"ws-churn.{serial:x}", reason="BackOff", message="Back-off restarting failed container dev", event_type="Warning"))
        else:
            index = rng.randrange(len(state.workspace_pods))
            meta = state.workspace_pods[index]["metadata"]
            await loader.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}")
            created = await loader.create(f"/api/v1/namespaces/{WORKSPACE_NAMESPACE}/pods", objects.workspace_pod(f"ws-r{serial}", WORKSPACE_NAMESPACE, str(uuid.uuid4())))
            state.workspace_pods[index] = _ref(created)
        self.done[kind] += 1


async def run(sizes: Sizes, *, churn: bool) -> tuple[list[Table], str]:
    """Run the steps; the memory table, the startup table, and the API server version."""
    state = ClusterState()
    steps = [
        StepResult("empty", 0, 0),
        StepResult("small", sizes.app_pods_small, 0),
        StepResult("large", sizes.app_pods_large, 0),
        StepResult("events", sizes.app_pods_large, sizes.events),
    ]
    churn_samples: list[tuple[float, int]] = []
    churner: _Churn | None = None
    with tempfile.TemporaryDirectory(prefix="logstream-bench-scale-") as tmp:
        workdir = Path(tmp)
        async with started_cluster() as cluster:
            kube_version = cluster.kube_version
            assert cluster.admin_kubeconfig is not None
            kubeconfig = cluster.admin_kubeconfig
            loader = KubeLoader(cluster)
            controller = None
            try:
                for namespace in (*APP_NAMESPACES, WORKSPACE_NAMESPACE):
                    await loader.create_namespace(namespace)
                await _measure_step(steps[0], kubeconfig, workdir, sizes.controller_runs, keep_last=False)

                await _add_workspace_pods(loader, state, sizes.workspace_pods)
                await _add_app_pods(loader, state, sizes.app_pods_small, f"pods (first {sizes.app_pods_small:,})")
                await _measure_step(steps[1], kubeconfig, workdir, sizes.controller_runs, keep_last=False)

                await _add_app_pods(loader, state, sizes.app_pods_large, f"pods (next {sizes.app_pods_large - sizes.app_pods_small:,})")
                await _measure_step(steps[2], kubeconfig, workdir, sizes.controller_runs, keep_last=False)

                await _add_events(loader, state, sizes.events)
                controller = await _measure_step(steps[3], kubeconfig, workdir, sizes.controller_runs, keep_last=churn)
                if controller is not None:
                    churner = _Churn(loader, state)
                    churn_samples = await churner.run(sizes.churn_seconds, controller)
                    if controller.process.poll() is not None:
                        raise RuntimeError(f"logstream-kube exited during churn:\n{controller.log_tail()}")
            finally:
                if controller is not None:
                    controller.stop()
                await loader.aclose()
    return [_memory_table(sizes, steps, state, churn_samples, churner), _startup_table(sizes, steps)], kube_version


def _mib(kib: float) -> float:
    return kib / 1024


def _memory_table(
    sizes: Sizes, steps: list[StepResult], state: ClusterState, samples: list[tuple[float, int]], churner: _Churn | None
) -> Table:
    table = Table(
        "memory",
        f"Memory of `logstream-kube --dry-run` (median of {sizes.controller_runs} runs per step, RSS {SETTLE_SECONDS:g} s after ready)",
        ["step", "workspace pods", "other pods", "events", "RSS MiB", "peak RSS MiB", "runs (RSS MiB)"],
    )
    for step in steps:
        workspace = 0 if step.step == "empty" else sizes.workspace_pods
        table.add(step.step, workspace, step.app_pods, step.events, _mib(step.rss_median_kib),
                  _mib(statistics.median(step.peak_kib)), ", ".join(f"{_mib(v):.1f}" for v in step.rss_kib))
        table.data.append({**step.__dict__})
    small, large, events = steps[1], steps[2], steps[3]
    per_pod = (large.rss_median_kib - small.rss_median_kib) * 1024 / (large.app_pods - small.app_pods)
    per_event = (events.rss_median_kib - large.rss_median_kib) * 1024 / max(1, events.events)
    table.notes.append(f"bytes per additional non-workspace pod: {per_pod:,.0f} (target <= {TARGET_BYTES_PER_POD:,})")
    table.notes.append(f"bytes per additional event: {per_event:,.0f}")
    table.notes.append(f"RSS at full scale: {_mib(events.rss_median_kib):.1f} MiB (target <= {TARGET_RSS_MIB} MB)")
    table.data.append({"bytes_per_pod": per_pod, "bytes_per_event": per_event})
    if samples and churner is not None:
        rss = [kib for _, kib in samples]
        writes = sum(churner.done.values())
        table.notes.append(
            f"churn: {sizes.churn_seconds:g} s, {writes:,} writes ({', '.join(f'{k}: {v:,}' for k, v in churner.done.items())}), "
            f"{churner.errors} failed; RSS at start {_mib(rss[0]):.1f} MiB, max {_mib(max(rss)):.1f} MiB, "
            f"after churn {_mib(rss[-1]):.1f} MiB"
        )
        table.data.append({"churn_samples": samples, "churn_writes": churner.done, "churn_errors": churner.errors})
    for label, (count, seconds) in state.create_seconds.items():
        table.notes.append(f"creating {label}: {count:,} objects in {seconds:.1f} s ({count / seconds:,.0f}/s)")
    return table


def _startup_table(sizes: Sizes, steps: list[StepResult]) -> Table:
    table = Table(
        "startup",
        "Seconds from process start to `/readyz` 200 (Python start and imports included)",
        ["step", "other pods", "events", "median s", "runs (s)"],
    )
    for step in steps:
        table.add(step.step, step.app_pods, step.events, statistics.median(step.ready_seconds),
                  ", ".join(f"{v:.2f}" for v in step.ready_seconds))
        table.data.append({"step": step.step, "ready_seconds": step.ready_seconds})
    table.notes.append(f"target: ready in <= {TARGET_READY_SECONDS:g} s with {sizes.app_pods_large:,} pods (step `large`)")
    return table
