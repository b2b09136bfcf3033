"""Run the real program: `logstream-kube` and the fake Coder server as subprocesses.

Tests act as kubelet and controllers: they create objects and events in the test bed's
API server, then wait (polling with a deadline, never a fixed sleep) until the fake
Coder has recorded the expected lines for an agent token.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.testbed.cluster import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_for(check: Callable[[], T], *, timeout: float = 30.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value {last!r}")
        time.sleep(0.05)
        last = check()
    return last


class FakeCoder:
    """`python -m tests.support.fake_coder` on a free loopback port, driven over HTTP."""

    def __init__(self, log_dir: Path) -> None:
        self._log = open(log_dir / "fake-coder.log", "w")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_coder", "--port", "0"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"fake Coder did not print its URL; got {self.url!r}")
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def add_agent(self, token: str, **options: Any) -> None:
        self._http.post("/_test/agents", json={"token": token, **options}).raise_for_status()

    def set_faults(self, **faults: Any) -> None:
        self._http.post("/_test/faults", json=faults).raise_for_status()

    def lines(self, token: str) -> list[dict[str, Any]]:
        response = self._http.get("/_test/lines", params={"token": token})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def texts(self, token: str) -> list[str]:
        return [line["output"] for line in self.lines(token)]

    def stop(self) -> None:
        self._http.close()
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._log.close()


class Controller:
    """One `logstream-kube` process with its own metrics port and log file."""

    def __init__(
        self,
        *,
        kubeconfig: Path | str,
        coder_url: str,
        log_path: Path,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.metrics_port = free_port()
        self.log_path = log_path
        self._log = open(log_path, "w")
        argv = [
            sys.executable, "-m", "logstream",
            "--coder-url", coder_url,
            "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
            "--batch-window-seconds", "0.05",
            "--retry-max-seconds", "1",
            "--log-level", "debug",
            *args,
        ]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("CODER_")}
        child_env.pop("KUBERNETES_SERVICE_HOST", None)
        child_env.update({"KUBECONFIG": str(kubeconfig), **(env or {})})
        self._process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=child_env)
        self._http = httpx.Client(base_url=f"http://127.0.0.1:{self.metrics_port}", timeout=5)

    @property
    def pid(self) -> int:
        return self._process.pid

    def _ready(self) -> bool:
        if self._process.poll() is not None:
            raise AssertionError(f"logstream-kube exited with {self._process.returncode}:\n{self.log_text()}")
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for(self._ready, timeout=timeout, what="logstream-kube /readyz")

    def metrics(self) -> str:
        return self._http.get("/metrics").text

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`.

        Fails when the controller does not export `name` at all, so a misspelt name
        cannot pass as zero.
        """
        text = self.metrics()
        family = name.removesuffix("_total")
        if f"# TYPE {family} " not in text and f"# TYPE {name} " not in text:
            raise AssertionError(f"metric {name!r} is not exported")
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            base, _, label_text = series.partition("{")
            if base != name:
                continue
            if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
                total += float(value)
        return total

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process and wait for it; its exit code."""
        self._http.close()
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
        return self._process.returncode
