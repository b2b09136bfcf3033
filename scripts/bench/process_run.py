"""Benchmark 1 against the real program: `logstream-kube --dry-run` as its own process.

The same scenarios and fake API server as `processing.py`, but the controller is the
real entry point (`python -m logstream --dry-run`, lines to /dev/null), so its
interpreter settings, imports and garbage collector are those of a deployment. CPU time
comes from /proc/PID/stat (user + system, in clock ticks of usually 10 ms), read before
`go` and after the process has received every frame and gone idle.

The controller's `/metrics` is read every `POLL_SECONDS` to see when every frame has
arrived; those scrapes are counted in the controller's CPU time too (a few ms each).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp

from scripts.bench.frames import Scenario, build_scenario
from scripts.bench.processing import fake_apiserver, write_kubeconfig
from scripts.bench.report import Table
from scripts.bench.testbed import ControllerProcess

POLL_SECONDS = 0.25
# The process counts as idle once its CPU time grew by at most this many ticks between polls.
IDLE_TICKS = 1
SCENARIOS = ("irrelevant-events", "irrelevant-pods", "mix")
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: utime and stime are fields 14 and 15 of the whole line.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND


async def run_in_process(scenario: Scenario) -> tuple[float, float, int]:
    """Stream `scenario` to a real controller; (CPU seconds, wall seconds, frames received)."""
    listed = scenario.workspace_pods + scenario.app_pods
    with tempfile.TemporaryDirectory(prefix="logstream-bench-proc-") as tmp, fake_apiserver(scenario) as url:
        controller = ControllerProcess.start(
            kubeconfig=write_kubeconfig(Path(tmp), url), log_path=Path(tmp) / "controller.log",
            args=["--dry-run", "--log-level", "warning"],
        )
        try:
            await controller.wait_ready()
            while await controller.metric("coder_logstream_kube_changes_total") < listed:
                await asyncio.sleep(POLL_SECONDS)
            started, cpu_started = time.perf_counter(), cpu_seconds(controller.pid)
            async with aiohttp.ClientSession() as session, session.post(f"{url}/_bench/go") as response:
                response.raise_for_status()
            received, previous = 0.0, cpu_started
            deadline = started + 60 + scenario.total / 500
            while time.perf_counter() < deadline:
                await asyncio.sleep(POLL_SECONDS)
                received = await controller.metric("coder_logstream_kube_changes_total") - listed
                now = cpu_seconds(controller.pid)
                if received >= scenario.total and now - previous <= IDLE_TICKS / CLOCK_TICKS_PER_SECOND:
                    break
                previous = now
            return cpu_seconds(controller.pid) - cpu_started, time.perf_counter() - started, int(received)
        finally:
            controller.stop()


async def run(*, frames: int, repeats: int) -> Table:
    table = Table(
        "processing-process",
        f"The real process: `python -m logstream --dry-run` ({frames:,} frames per scenario, median of {repeats} runs)",
        ["scenario", "frames received", "CPU µs/frame", "min CPU µs/frame", "frames per CPU s"],
    )
    for name in SCENARIOS:
        scenario = build_scenario(name, frames)
        runs = sorted([await run_in_process(scenario) for _ in range(repeats)])
        cpu, _, received = runs[len(runs) // 2]
        table.add(name, received, cpu * 1e6 / frames, runs[0][0] * 1e6 / frames, frames / cpu)
        table.data += [{"scenario": name, "cpu_seconds": c, "seconds": s, "received": r} for c, s, r in runs]
    table.notes.append(
        "CPU time includes the idle tail until the process is seen idle and the /metrics scrapes, "
        f"about {1 / POLL_SECONDS:g} per second."
    )
    return table
