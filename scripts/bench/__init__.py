"""Benchmarks of logstream-kube: cost per watch frame, memory at cluster scale, delivery
latency and request economy, startup time. Run `python -m scripts.bench --help`.

| name       | needs     | measures |
|------------|-----------|----------|
| processing | nothing   | frames/s and CPU µs per frame, dropped vs. turned into lines, json vs. orjson |
| process    | nothing   | the same for the real `python -m logstream --dry-run` process, CPU from /proc |
| profile    | nothing   | where the CPU time of the `mix` scenario goes (pyinstrument, else cProfile) |
| memory     | test bed  | RSS after sync at two sizes, bytes per extra pod and event, RSS after churn |
| startup    | test bed  | seconds from process start to `/readyz` 200 at each size |
| latency    | test bed  | event-written-to-line-stored latency, lines per Coder request |

This module only defines the modes and dispatches; the benchmark modules are imported
when they run, so the fake API server's process stays light.
"""

from __future__ import annotations

from dataclasses import dataclass

from scripts.bench.report import Table

BENCHMARKS = ("processing", "process", "profile", "memory", "startup", "latency")


@dataclass(frozen=True)
class Sizes:
    """The sizes of every benchmark in one mode."""

    processing_frames: int
    parsers: tuple[str, ...]
    processing_repeats: int = 3
    # Cluster scale: non-workspace pods at the two sizes, events, workspace pods.
    app_pods_small: int = 2_000
    app_pods_large: int = 10_000
    events: int = 50_000
    workspace_pods: int = 100
    churn_seconds: float = 600.0
    # Controller runs per size; the RSS reported is their median.
    controller_runs: int = 3
    latency_seconds: float = 60.0
    latency_events_per_second: float = 200.0
    latency_workspaces: int = 50
    burst_events: int = 2_000
    # One burst per entry: its events go to this many workspaces.
    burst_workspaces: tuple[int, ...] = (1, 4)


MODES = {
    "full": Sizes(processing_frames=50_000, parsers=("json", "orjson")),
    "quick": Sizes(processing_frames=20_000, parsers=("json", "orjson"), processing_repeats=2, churn_seconds=60.0,
                   controller_runs=1, latency_seconds=20.0),
    "smoke": Sizes(processing_frames=2_000, parsers=("json",), processing_repeats=1),
}


async def run_benchmarks(names: list[str], sizes: Sizes, *, mode: str) -> list[Table]:
    """Run the named benchmarks in a fixed order; the machine table comes first."""
    from scripts.bench.machine import machine_table

    tables: list[Table] = []
    kube_version = ""
    if "processing" in names:
        from scripts.bench import processing

        parsers = [p for p in sizes.parsers if p == "json" or _importable(p)]
        tables.append(await processing.run(frames=sizes.processing_frames, parsers=parsers, repeats=sizes.processing_repeats))
    if "process" in names:
        from scripts.bench import process_run

        tables.append(await process_run.run(frames=sizes.processing_frames, repeats=sizes.processing_repeats))
    if "profile" in names:
        from scripts.bench import profile

        tables.append(await profile.run(frames=sizes.processing_frames))
    if "memory" in names or "startup" in names:
        from scripts.bench import scale

        scale_tables, kube_version = await scale.run(sizes, churn="memory" in names)
        tables += [t for t in scale_tables if t.key in names]
    if "latency" in names:
        from scripts.bench import latency

        latency_tables, kube_version = await latency.run(sizes)
        tables += latency_tables
    return [machine_table(mode=mode, benchmarks=names, kube_version=kube_version), *tables]


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
