"""The CPU time of the processing benchmark, by function.

Runs scenarios of benchmark 1 under a profiler that covers only the streaming phase and
lists the functions with the most self time, and the time the garbage collector took. pyinstrument (a sampling profiler, small
overhead) is used when installed; otherwise cProfile, whose per-call overhead inflates
small functions but whose call counts are exact.
"""

from __future__ import annotations

import cProfile
import gc
import importlib.util
import pstats
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from scripts.bench.frames import build_scenario
from scripts.bench.processing import run_scenario
from scripts.bench.report import Table

TOP_FUNCTIONS = 15
SAMPLE_INTERVAL_SECONDS = 0.001
PROFILED_SCENARIOS = ("mix", "irrelevant-events")
REPO_ROOT = Path(__file__).resolve().parents[2]


class _Pyinstrument:
    name = "pyinstrument"

    def __init__(self) -> None:
        from pyinstrument import Profiler

        self._profiler = Profiler(interval=SAMPLE_INTERVAL_SECONDS, async_mode="disabled")

    def start(self) -> None:
        self._profiler.start()

    def stop(self) -> None:
        self._profiler.stop()

    def self_times(self) -> tuple[dict[str, float], float]:
        """Self seconds by function, and the total sampled seconds."""
        session = self._profiler.last_session
        assert session is not None
        totals: defaultdict[str, float] = defaultdict(float)
        root = session.root_frame()
        stack = [root] if root is not None else []
        while stack:
            frame = stack.pop()
            stack.extend(frame.children)
            if frame.is_synthetic:
                continue
            totals[_label(frame.function, frame.file_path or "", frame.line_no or 0)] += frame.total_self_time
        return totals, session.duration


class _CProfile:
    name = "cProfile"

    def __init__(self) -> None:
        self._profiler = cProfile.Profile()

    def start(self) -> None:
        self._profiler.enable()

    def stop(self) -> None:
        self._profiler.disable()

    def self_times(self) -> tuple[dict[str, float], float]:
        stats: Any = getattr(pstats.Stats(self._profiler), "stats")
        totals: defaultdict[str, float] = defaultdict(float)
        for (path, line, function), (_, _, own, _, _) in stats.items():
            totals[_label(function, path, line)] += own
        return totals, sum(totals.values())


class GcTimer:
    """Wall time spent in the garbage collector while started, from `gc.callbacks`.

    A sampling profiler charges a collection to the function that allocated the object
    which triggered it, most often the JSON decoder, so the profile alone overstates
    parsing. The collector blocks this thread while it runs, so on an idle machine its
    wall time is close to CPU time.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._entered = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._entered = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._entered
            self.collections += 1

    def start(self) -> None:
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)


class _Profiled:
    """Starts and stops a profiler and a `GcTimer` together, for `run_scenario`."""

    def __init__(self, profiler: _Pyinstrument | _CProfile, gc_timer: GcTimer) -> None:
        self._profiler = profiler
        self._gc_timer = gc_timer

    def start(self) -> None:
        self._gc_timer.start()
        self._profiler.start()

    def stop(self) -> None:
        self._profiler.stop()
        self._gc_timer.stop()


_STDLIB = re.compile(r"^.*/lib/python3\.\d+/")


def _label(function: str, path: str, line: int) -> str:
    if _STDLIB.match(path) and "site-packages/" not in path:
        path = _STDLIB.sub("stdlib:", path)
    else:
        for root in (str(REPO_ROOT) + "/", "site-packages/"):
            if root in path:
                path = path.split(root, 1)[1]
                break
    return f"{function} ({path}:{line})"


def new_profiler() -> _Pyinstrument | _CProfile:
    return _Pyinstrument() if importlib.util.find_spec("pyinstrument") else _CProfile()


async def run(*, frames: int) -> Table:
    table = Table("profile", "", ["scenario", "function (file:line)", "self ms", "% of profiled", "µs per frame"])
    for name in PROFILED_SCENARIOS:
        scenario = build_scenario(name, frames)
        profiler = new_profiler()
        gc_timer = GcTimer()
        result = await run_scenario(scenario, profiler=_Profiled(profiler, gc_timer))
        totals, profiled = profiler.self_times()
        for label, seconds in sorted(totals.items(), key=lambda item: item[1], reverse=True)[:TOP_FUNCTIONS]:
            table.add(name, f"`{label}`", seconds * 1000, f"{100 * seconds / profiled:.1f}", seconds * 1e6 / frames)
            table.data.append({"scenario": name, "function": label, "self_seconds": seconds})
        table.notes.append(
            f"{name}: {result.frames:,} frames, {result.cpu_us_per_frame:.1f} CPU µs per frame under the profiler "
            f"({profiler.name}), {profiled:.2f} s profiled; {gc_timer.collections:,} garbage collections took "
            f"{gc_timer.seconds * 1e6 / frames:.1f} µs per frame, charged above to the functions that triggered them."
        )
    table.title = f"Self time by function, streaming phase only ({frames:,} frames per scenario, {new_profiler().name})"
    return table
