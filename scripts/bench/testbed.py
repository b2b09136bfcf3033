"""What the test-bed benchmarks share: the API server, a fast object loader, and the
controller as a subprocess with its RSS and readiness.

Everything listens on 127.0.0.1. The API server is the integration tests' `TestCluster`
(etcd and kube-apiserver built by `scripts/testbed.sh`); the caller stops it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.testbed.cluster import TestCluster, free_port, locate_binaries

REPO_ROOT = Path(__file__).resolve().parents[2]
# Requests in flight while creating objects: enough to keep the API server busy on a
# small machine without queueing in its priority-and-fairness layer.
CREATE_CONCURRENCY = 24
REQUEST_TIMEOUT_SECONDS = 60.0
READY_POLL_SECONDS = 0.02
READY_TIMEOUT_SECONDS = 300.0
STOP_TIMEOUT_SECONDS = 30.0


@asynccontextmanager
async def started_cluster() -> AsyncIterator[TestCluster]:
    """A started test bed, stopped on exit (also on failure or Ctrl-C)."""
    cluster = TestCluster(locate_binaries())
    await asyncio.to_thread(cluster.start)
    try:
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)


class KubeLoader:
    """Creates and changes objects with the admin token, many requests at a time."""

    def __init__(self, cluster: TestCluster) -> None:
        self.client = httpx.AsyncClient(
            base_url=cluster.server_url,
            verify=cluster.admin_ssl_context(),
            headers=cluster.admin_headers(),
            timeout=REQUEST_TIMEOUT_SECONDS,
            limits=httpx.Limits(max_connections=CREATE_CONCURRENCY, max_keepalive_connections=CREATE_CONCURRENCY),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def create(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(collection, json=body)
        if response.status_code >= 300:
            raise RuntimeError(f"POST {collection} returned HTTP {response.status_code}: {response.text[:300]}")
        created: dict[str, Any] = response.json()
        return created

    async def patch(self, path: str, body: dict[str, Any]) -> None:
        response = await self.client.patch(
            path, json=body, headers={"Content-Type": "application/merge-patch+json"}
        )
        if response.status_code >= 300:
            raise RuntimeError(f"PATCH {path} returned HTTP {response.status_code}: {response.text[:300]}")

    async def delete(self, path: str) -> None:
        response = await self.client.delete(path)
        if response.status_code >= 300 and response.status_code != 404:
            raise RuntimeError(f"DELETE {path} returned HTTP {response.status_code}: {response.text[:300]}")

    async def create_many(
        self, collection: Callable[[dict[str, Any]], str], bodies: Iterable[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], float]:
        """Create every body, `CREATE_CONCURRENCY` at a time; the created objects and the seconds taken."""
        pending = iter(enumerate(bodies))
        created: dict[int, dict[str, Any]] = {}

        async def worker() -> None:
            for index, body in pending:
                created[index] = await self.create(collection(body), body)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CREATE_CONCURRENCY)))
        return [created[i] for i in sorted(created)], time.perf_counter() - started

    async def create_namespace(self, name: str) -> None:
        await self.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def namespaced(plural: str) -> Callable[[dict[str, Any]], str]:
    """The collection path of a core/v1 object's namespace, for `create_many`."""
    return lambda body: f"/api/v1/namespaces/{body['metadata']['namespace']}/{plural}"


def memory_kib(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB, from /proc/PID/status."""
    text = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    peak = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    if rss is None or peak is None:
        raise RuntimeError(f"/proc/{pid}/status has no VmRSS or VmHWM")
    return int(rss.group(1)), int(peak.group(1))


@dataclass
class ControllerProcess:
    """One `logstream-kube` process (`python -m logstream`), its log in `log_path`."""

    process: subprocess.Popen[bytes]
    metrics_port: int
    log_path: Path
    started_at: float

    @classmethod
    def start(cls, *, kubeconfig: Path, log_path: Path, args: list[str]) -> ControllerProcess:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODER_")}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env["KUBECONFIG"] = str(kubeconfig)
        argv = [sys.executable, "-m", "logstream", "--metrics-addr", f"127.0.0.1:{port}", *args]
        with open(log_path, "wb") as log:
            started_at = time.perf_counter()
            process = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
        return cls(process, port, log_path, started_at)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_ready(self) -> float:
        """Seconds from process start until `/readyz` returned 200."""
        deadline = self.started_at + READY_TIMEOUT_SECONDS
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.metrics_port}", timeout=2) as client:
            while time.perf_counter() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"logstream-kube exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return time.perf_counter() - self.started_at
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(READY_POLL_SECONDS)
        raise RuntimeError(f"logstream-kube not ready after {READY_TIMEOUT_SECONDS} s:\n{self.log_tail()}")

    async def metric(self, name: str) -> float:
        """Sum of every sample of metric `name` (all label sets)."""
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.metrics_port}", timeout=5) as client:
            text = (await client.get("/metrics")).text
        return sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ")
        )

    def memory_kib(self) -> tuple[int, int]:
        return memory_kib(self.pid)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after `STOP_TIMEOUT_SECONDS`; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(log {self.log_path} unreadable: {exc})"


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of `values` (share 0.99 for p99)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-share * len(ordered) // 1))))
    return ordered[rank - 1]
