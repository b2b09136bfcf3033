"""Benchmark 1: processing cost per watch frame, dropped and turned into lines.

The controller's own `Pipeline` (watchers, change queue, correlator) runs in this
process against the fake API server of `fake_apiserver.py`, which runs in a child
process so that its CPU time is not counted. The sink only counts lines. Per scenario:

1. start the fake API server and the pipeline, wait until every watcher has listed and
   the correlator has handled the list;
2. read `time.perf_counter()` and `time.process_time()`, tell the server to stream;
3. stop the clocks when the correlator has handled every frame of the scenario.

CPU µs per frame is this process's CPU time (user and system) divided by the frames.
The pipeline is single-threaded, so frames per CPU second is the rate one core sustains.
The counting of handled messages adds one increment and one comparison per frame.

With `parser="orjson"` the watcher's and the API layer's `json.loads` are replaced by
`orjson.loads` for the run, to see whether a faster parser pays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from logstream.app import Pipeline, freeze_startup_objects
from logstream.cli import load_settings
from logstream.kube import api as kube_api
from logstream.kube import watcher as kube_watcher
from logstream.kube.api import KubeApi
from logstream.kube.client import connect
from logstream.kube.resources import EVENTS, INDEXED
from logstream.lines import AgentToken, LogLine
from logstream.ops.metrics import Metrics
from scripts.bench.frames import (
    SCENARIO_NAMES,
    FrameSource,
    Scenario,
    build_scenario,
)
from scripts.bench.report import Table

REPO_ROOT = Path(__file__).resolve().parents[2]
# Seconds to wait for the fake API server to print its URL, and for the list phase.
STARTUP_TIMEOUT_SECONDS = 30.0
# The slowest rate a run may have before it is called stuck, in frames per second.
MIN_FRAMES_PER_SECOND = 500
POLL_SECONDS = 0.01


class CountingSink:
    """A `LineSink` that counts lines by the kind of signal they report."""

    def __init__(self) -> None:
        self.lines: Counter[str] = Counter()

    def submit(self, line: LogLine) -> None:
        self.lines[line.signal.split("/", 1)[0]] += 1

    def release(self, token: AgentToken) -> None:
        pass


@dataclass
class ProcessingResult:
    scenario: str
    parser: str
    frames: int
    frames_written: int
    frames_handled: int
    lines: int
    expected_lines: int
    dropped: int
    seconds: float
    cpu_seconds: float
    frame_bytes: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds

    @property
    def cpu_us_per_frame(self) -> float:
        return self.cpu_seconds * 1e6 / self.frames

    @property
    def frames_per_cpu_second(self) -> float:
        return self.frames / self.cpu_seconds

    @property
    def accounted(self) -> bool:
        """Every frame was written, received and handled, and only the expected lines came out."""
        return (
            self.frames_written == self.frames
            and self.frames_handled == self.frames
            and self.lines == self.expected_lines
        )


@contextlib.contextmanager
def json_parser(name: str) -> Iterator[None]:
    """Make the watcher and the API layer parse JSON with `name` ("json" or "orjson")."""
    if name == "json":
        yield
        return
    import orjson

    shim = types.SimpleNamespace(loads=orjson.loads)
    modules = (kube_watcher, kube_api)
    saved = [getattr(module, "json") for module in modules]
    for module in modules:
        setattr(module, "json", shim)
    try:
        yield
    finally:
        for module, original in zip(modules, saved):
            setattr(module, "json", original)


@contextlib.contextmanager
def fake_apiserver(scenario: Scenario) -> Iterator[str]:
    """Run the fake API server for `scenario` as a child process; yield its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.bench.fake_apiserver", scenario.name, str(scenario.total)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"fake API server did not print its URL; got {url!r}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def write_kubeconfig(directory: Path, server_url: str) -> Path:
    path = directory / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: bench\n"
        f"clusters: [{{name: bench, cluster: {{server: '{server_url}'}}}}]\n"
        "users: [{name: bench, user: {token: bench-token}}]\n"
        "contexts: [{name: bench, context: {cluster: bench, user: bench}}]\n"
    )
    return path


class _HandledCounter:
    """Counts the messages the correlator finished; sets `reached` at `target`."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.reached = asyncio.Event()

    def wrap(self, pipeline: Pipeline) -> None:
        handle = pipeline.correlator.handle

        async def counting_handle(message: kube_watcher.Message) -> None:
            await handle(message)
            self.count += 1
            if self.count == self.target:
                self.reached.set()

        pipeline.correlator.handle = counting_handle  # type: ignore[method-assign]

    def expect(self, target: int) -> None:
        self.target = target
        self.reached.clear()
        if self.count >= target:
            self.reached.set()


async def run_scenario(scenario: Scenario, *, parser: str = "json", profiler: Any = None) -> ProcessingResult:
    """Run one scenario in this process; `profiler` (start()/stop()) covers the streaming only."""
    with (
        tempfile.TemporaryDirectory(prefix="logstream-bench-") as tmp,
        fake_apiserver(scenario) as url,
        json_parser(parser),
    ):
        api_client = await connect(write_kubeconfig(Path(tmp), url))
        try:
            return await _measure(scenario, parser, url, api_client, profiler)
        finally:
            await api_client.close()


async def _measure(scenario: Scenario, parser: str, url: str, api_client: Any, profiler: Any) -> ProcessingResult:
    sink = CountingSink()
    settings = load_settings(["--dry-run"])
    freeze_startup_objects()  # as `logstream.cli.main` does before it runs the controller
    pipeline = Pipeline(settings=settings, api=KubeApi(api_client, request_timeout_seconds=30), sink=sink, metrics=Metrics())
    counter = _HandledCounter()
    counter.wrap(pipeline)
    task = asyncio.create_task(pipeline.run(), name="bench pipeline")

    # The list phase: one change per listed object and one `Listed` per watcher.
    watchers = len(INDEXED) + 1
    counter.expect(scenario.workspace_pods + scenario.app_pods + watchers)
    await asyncio.wait_for(counter.reached.wait(), STARTUP_TIMEOUT_SECONDS)
    if not pipeline.ready():
        raise RuntimeError("the pipeline handled its lists but does not report ready")
    if len(pipeline.correlator.index) != scenario.workspace_pods:
        raise RuntimeError(f"indexed {len(pipeline.correlator.index)} objects, expected {scenario.workspace_pods}")

    counter.expect(counter.count + scenario.total)
    async with aiohttp.ClientSession() as session:
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.start()
        async with session.post(f"{url}/_bench/go") as response:
            response.raise_for_status()
        timeout = STARTUP_TIMEOUT_SECONDS + scenario.total / MIN_FRAMES_PER_SECOND
        try:
            await asyncio.wait_for(counter.reached.wait(), timeout)
        except TimeoutError:
            pass  # reported below as frames not accounted for
        finally:
            if profiler is not None:
                profiler.stop()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        async with session.get(f"{url}/_bench/stats") as response:
            written = (await response.json())["frames_written"]

    handled = counter.count - (counter.target - scenario.total)
    # Stop the pipeline the way an operator does; it installed its SIGTERM handler.
    os.kill(os.getpid(), signal.SIGTERM)
    await task
    source = FrameSource(scenario)
    return ProcessingResult(
        scenario=scenario.name,
        parser=parser,
        frames=scenario.total,
        frames_written=sum(written.values()),
        frames_handled=handled,
        lines=sum(sink.lines.values()),
        expected_lines=scenario.expected_lines,
        dropped=scenario.dropped,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        frame_bytes=_mean_frame_bytes(source, scenario),
    )


def _mean_frame_bytes(source: FrameSource, scenario: Scenario) -> float:
    sizes = [len(chunk) for path in (EVENTS.collection_path(None), "/api/v1/pods") for chunk in source.writes(path)]
    return sum(sizes) / scenario.total


async def run(*, frames: int, parsers: list[str], repeats: int, scenarios: tuple[str, ...] = SCENARIO_NAMES) -> Table:
    """Run every scenario with every parser `repeats` times; each table row shows the median run.

    Other processes on the machine inflate single runs, so the minimum is shown too.
    """
    logging.getLogger("logstream").setLevel(logging.WARNING)
    table = Table(
        "processing",
        f"Processing cost per watch frame ({frames:,} frames per scenario, median of {repeats} runs)",
        ["scenario", "parser", "mean frame bytes", "lines", "frames/s", "CPU µs/frame", "min CPU µs/frame",
         "frames per CPU s", "accounted"],
    )
    for name in scenarios:
        for parser in parsers:
            results = [await run_scenario(build_scenario(name, frames), parser=parser) for _ in range(repeats)]
            results.sort(key=lambda result: result.cpu_seconds)
            median, best = results[len(results) // 2], results[0]
            failed = [result for result in results if not result.accounted]
            table.add(
                name, parser, median.frame_bytes, median.lines, median.frames_per_second,
                median.cpu_us_per_frame, best.cpu_us_per_frame, median.frames_per_cpu_second,
                "yes" if not failed else (
                    f"NO: written {failed[0].frames_written}, handled {failed[0].frames_handled}, "
                    f"lines {failed[0].lines} of {failed[0].expected_lines}"
                ),
            )
            for result in results:
                table.data.append({**result.__dict__, "accounted": result.accounted,
                                   "frames_per_second": result.frames_per_second,
                                   "cpu_us_per_frame": result.cpu_us_per_frame})
    table.notes.append(
        "Frames per CPU s is what one core sustains (the pipeline is one thread). `irrelevant-events` and "
        "`irrelevant-pods` are dropped frames; every frame of `event-lines` and `status-lines` becomes one line; "
        "`mix` is 55 % irrelevant events, 35 % irrelevant pod updates, 7 % event lines, 3 % status lines."
    )
    return table
