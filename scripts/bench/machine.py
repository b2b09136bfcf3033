"""The machine and software a benchmark ran on, for the report."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from scripts.bench.report import Table

DEPENDENCIES = (
    "aiohttp", "httpx", "kubernetes_asyncio", "prometheus-client", "pydantic-settings", "orjson", "pyinstrument",
)


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _memory_gib() -> str:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return "unknown"
    match = re.search(r"^MemTotal:\s+(\d+) kB", text, re.MULTILINE)
    return f"{int(match.group(1)) / 1024 / 1024:.1f} GiB" if match else "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_table(*, mode: str, benchmarks: list[str], kube_version: str = "") -> Table:
    """Describe the machine and software of the latest run; `benchmarks` names what it ran."""
    table = Table("machine", "Machine and software", ["what", "value"])
    table.add("run", f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, mode {mode}, benchmarks: {', '.join(benchmarks)}")
    table.add("CPU", _cpu_model())
    table.add("cores", os.cpu_count() or 0)
    table.add("memory", _memory_gib())
    table.add("OS", f"{platform.system()} {platform.release()}")
    table.add("Python", f"{platform.python_implementation()} {platform.python_version()}")
    for package in DEPENDENCIES:
        table.add(package, _version(package))
    if kube_version:
        table.add("kube-apiserver (test bed)", kube_version)
    return table
