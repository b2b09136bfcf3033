"""A fixture that fails a test which leaves asyncio tasks running.

Import it into a conftest.py of tests that run on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest


@pytest.fixture(autouse=True)
async def no_task_left_running() -> AsyncIterator[None]:
    yield

    # Let finished tasks run their last callbacks before looking.
    for _ in range(5):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    assert not left, f"tasks still running after the test: {left}"
