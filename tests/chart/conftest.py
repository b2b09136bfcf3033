"""Fixtures for the chart tests: the test bed's pinned helm binary.

Without the test-bed binaries the tests are skipped, except under CI (`CI` set),
where the fixture fails instead, as in tests/integration.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chart.helm import Helm
from tests.testbed import TestbedUnavailable, locate_binaries


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    try:
        binaries = locate_binaries()
    except TestbedUnavailable as exc:
        reason = f"helm from the test bed is unavailable (run `make testbed`): {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return binaries.helm


@pytest.fixture
def helm(helm_binary: Path, tmp_path: Path) -> Helm:
    """helm with HOME and its cache and config directories under the test's tmp_path."""
    return Helm(binary=helm_binary, home=tmp_path / "helm-home")
