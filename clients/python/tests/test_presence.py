"""Presence against a real server: ``Presence`` events on single and multiplexed streams,
one join per subject (tabs are one presence), one leave after the last, the presence
listing, and the token's info."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from picloud.testing import PiCloudApp
from test_subscribe import FAST

from picloud_client import AsyncApp, AsyncPiCloud, Conflict, Event, Message, Presence


class Reader:
    """Reads a subscription in a task of its own (cancelling a pending ``anext`` would end
    the stream), keeping what it yielded."""

    def __init__(self, pc: AsyncPiCloud, host: str, topics: Any, token: str) -> None:
        self.sub = pc.subscribe(host, topics, token=token, backoff=FAST)
        self.events: list[Event[Any]] = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for event in self.sub:
            self.events.append(event)

    @property
    def presence(self) -> list[Presence]:
        return [e for e in self.events if isinstance(e, Presence)]

    async def wait_presence(self, count: int, within: float = 10) -> list[Presence]:
        await self.wait(lambda: len(self.presence) >= count, within)
        return self.presence

    async def wait(self, done: Any, within: float = 10) -> None:
        async with asyncio.timeout(within):
            while not done():  # noqa: ASYNC110 (events arrive in another task)
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.sub.aclose()


def by_subject(events: list[Presence]) -> list[Presence]:
    return sorted(events, key=lambda p: (p.subject, p.event))


async def test_tabs_are_one_presence_and_the_last_one_leaves(
    app: AsyncApp, picloud_app: PiCloudApp
) -> None:
    await app.create_topic("room", external_subscribable=True, auth_mode="token")
    await app.create_topic("news", external_subscribable=True, auth_mode="public")
    topic = await app.update_topic("room", presence=True)
    assert topic["presence"] is True
    await asyncio.sleep(0.5)  # the relay heard of the change (it ends the topic's streams)
    tokens = {
        "ada": await app.mint_stream_token(["room", "news"], subject="ada", info={"name": "Ada"}),
        "bob": await app.mint_stream_token(["room"], subject="bob"),
    }
    ada, bob = tokens["ada"]["token"], tokens["bob"]["token"]
    host = picloud_app.host
    ada_joined = Presence("room", "joined", "ada", {"name": "Ada"})
    bob_joined = Presence("room", "joined", "bob", None)
    async with AsyncPiCloud(picloud_app.server.url) as pc:
        watcher = Reader(pc, host, "room", bob)
        assert await watcher.wait_presence(1) == [bob_joined]
        tab1 = Reader(pc, host, ["room", "news"], ada)
        assert await watcher.wait_presence(2) == [bob_joined, ada_joined]
        assert by_subject(await tab1.wait_presence(2)) == [ada_joined, bob_joined]
        tab2 = Reader(pc, host, "room", ada)
        assert by_subject(await tab2.wait_presence(2)) == [ada_joined, bob_joined]
        await asyncio.sleep(1)
        assert len(watcher.presence) == 2, "a second tab is not a second join"
        who = await app.presence("room")
        assert sorted((s["subject"], s["info"], s["connections"]) for s in who) == [
            ("ada", {"name": "Ada"}, 2),
            ("bob", None, 1),
        ]
        # Messages still flow on the multiplexed stream beside the presence events.
        await app.publish("news", "hello")
        await tab1.wait(lambda: any(isinstance(e, Message) for e in tab1.events))
        [message] = [e for e in tab1.events if isinstance(e, Message)]
        assert (message.topic, message.message) == ("news", "hello")
        await tab1.close()
        await asyncio.sleep(1)
        assert len(watcher.presence) == 2, "ada is still here in another tab"
        await tab2.close()
        left = await watcher.wait_presence(3)
        assert left[2] == Presence("room", "left", "ada", {"name": "Ada"})
        await asyncio.sleep(0.5)
        assert len(watcher.presence) == 3, "one leave"
        await watcher.close()
    with pytest.raises(Conflict):
        await app.presence("news")  # no presence on this topic
