"""Helpers for the client's tests."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

import httpx


class FakeClock:
    """Records the back-off delays asked for instead of sleeping them; ``on_sleep`` may
    act between attempts (e.g. start the server again)."""

    def __init__(self, random: float = 0.0) -> None:
        self.sleeps: list[float] = []
        self.rand = random
        self.on_sleep: Callable[[int], Awaitable[None]] | None = None

    def random(self) -> float:
        return self.rand

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            await self.on_sleep(len(self.sleeps))
        await asyncio.sleep(0)


async def live_subscribers(url: str) -> int:
    """The server's ``picloud_realtime_subscribers`` gauge."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(url + "/metrics")).text
    match = re.search(r"^picloud_realtime_subscribers (\S+)$", text, re.M)
    assert match, text[:500]
    return int(float(match.group(1)))


async def until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {within}s")
        await asyncio.sleep(0.05)
