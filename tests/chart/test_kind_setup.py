"""scripts/kind-setup.sh stops with a clear message when docker or kind is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.chart.helm import ROOT

SCRIPT = ROOT / "scripts" / "kind-setup.sh"


def run_without_tools(tmp_path: Path, *args: str, extra_bin: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the script with a PATH holding only `extra_bin` stubs, and HOME in tmp_path."""
    bash = shutil.which("bash")
    assert bash is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (extra_bin or {}).items():
        stub = bin_dir / name
        stub.write_text(f"#!{bash}\n{body}\n")
        stub.chmod(0o755)
    return subprocess.run(
        [bash, str(SCRIPT), *args],
        capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path / "home")},
    )


@pytest.mark.parametrize("command", ["create", "test", "delete"])
def test_fails_without_docker_and_kind(tmp_path: Path, command: str) -> None:
    result = run_without_tools(tmp_path, command)
    assert result.returncode == 1
    assert "docker and kind not found in PATH" in result.stderr
    assert "make testbed test" in result.stderr
    assert "command not found" not in result.stderr
    # Nothing was created before the check.
    assert not (tmp_path / "home").exists()


def test_names_the_missing_tool(tmp_path: Path) -> None:
    result = run_without_tools(tmp_path, "create", extra_bin={"docker": "exit 0"})
    assert result.returncode == 1
    assert "error: kind not found in PATH" in result.stderr


def test_fails_without_docker_daemon(tmp_path: Path) -> None:
    result = run_without_tools(
        tmp_path, "create", extra_bin={"docker": "exit 1", "kind": "exit 0"}
    )
    assert result.returncode == 1
    assert "'docker info' failed" in result.stderr


def test_unknown_command_prints_usage(tmp_path: Path) -> None:
    result = run_without_tools(tmp_path, "launch")
    assert result.returncode == 1
    assert "usage: scripts/kind-setup.sh create|test|delete" in result.stderr
