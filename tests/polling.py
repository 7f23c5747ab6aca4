"""Waiting for a condition that no event announces."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(predicate: Callable[[], bool], within: float = 10, step: float = 0.01) -> None:
    """Poll until ``predicate()`` holds (server state, files on disk); fail after ``within`` s."""
    for _ in range(int(within / step) + 1):
        if predicate():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"condition not met within {within}s")
