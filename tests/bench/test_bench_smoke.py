"""The benchmark's smoke mode runs end to end and accounts for every frame.

It checks that the benchmark still works against the current controller, not how fast
the controller is: no assertion here depends on timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT_SECONDS = 120
SCENARIOS = {"irrelevant-events", "irrelevant-pods", "event-lines", "status-lines", "mix"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict, str]:
    out = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.bench", "--smoke", "--output", str(out / "bench.md"), "--json", str(out / "bench.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_SECONDS, check=False,
    )
    assert completed.returncode == 0, f"smoke run failed:\n{completed.stdout}\n{completed.stderr}"
    return completed, json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


def test_smoke_covers_every_scenario(smoke_run):
    _, results, _ = smoke_run
    runs = results["processing"]["data"]
    assert {run["scenario"] for run in runs} == SCENARIOS


def test_smoke_accounts_for_every_frame(smoke_run):
    _, results, _ = smoke_run
    for run in results["processing"]["data"]:
        assert run["frames"] > 0, run
        assert run["frames_written"] == run["frames"], run
        assert run["frames_handled"] == run["frames"], run
        assert run["accounted"] is True, run


def test_smoke_lines_match_the_relevant_frames(smoke_run):
    _, results, _ = smoke_run
    lines = {run["scenario"]: run["lines"] for run in results["processing"]["data"]}
    frames = {run["scenario"]: run["frames"] for run in results["processing"]["data"]}
    assert lines["irrelevant-events"] == 0
    assert lines["irrelevant-pods"] == 0
    assert lines["event-lines"] == frames["event-lines"]
    assert lines["status-lines"] == frames["status-lines"]
    assert 0 < lines["mix"] < frames["mix"]


def test_smoke_table_is_printed_and_written(smoke_run):
    completed, results, markdown = smoke_run
    rows = results["processing"]["rows"]
    assert len(rows) == len(SCENARIOS)
    assert all(row[-1] == "yes" for row in rows), rows
    assert "Processing cost per watch frame" in completed.stdout
    assert "<!-- bench:processing -->" in markdown
    assert "<!-- /bench:processing -->" in markdown
    assert "| mix | json |" in markdown
    assert "<!-- bench:machine -->" in markdown
