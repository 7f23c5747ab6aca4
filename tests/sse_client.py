"""A small Server-Sent Events reader for tests (comments kept, so heartbeats are visible)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from picloud.realtime.cursor import parse_cursor


@dataclass
class Event:
    event: str = "message"
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return orjson.loads(self.data)

    @property
    def seq(self) -> int:
        """The message number in this event's id (a resume cursor)."""
        assert self.id is not None, self
        return parse_cursor(self.id).seq


class EndOfStream(Exception):
    """The server ended the stream."""


class SseStream:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.status = response.status
        self.headers = response.headers

    async def next(self, within: float = 10) -> Event:
        """The next event or comment block (a comment-only block has event 'comment')."""
        event = Event()
        seen = False
        async with asyncio.timeout(within):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EndOfStream
                line = raw.decode().rstrip("\n")
                if line == "":
                    if seen:
                        if event.data == "" and event.id is None and event.comments:
                            event.event = "comment"
                        return event
                    continue
                seen = True
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    event.comments.append(value)
                elif name == "data":
                    event.data = value if not event.data else event.data + "\n" + value
                elif name == "id":
                    event.id = value
                elif name == "event":
                    event.event = value

    async def next_event(self, within: float = 10) -> Event:
        """The next real event, skipping comments (':ok', ':heartbeat')."""
        async with asyncio.timeout(within):
            while True:
                event = await self.next(within)
                if event.event != "comment":
                    return event

    async def messages(self, count: int, within: float = 10) -> list[tuple[int, Any]]:
        """``count`` message events as (message number, message)."""
        out = []
        async with asyncio.timeout(within):
            for _ in range(count):
                event = await self.next_event(within)
                assert event.event == "message", event
                assert event.id is not None
                out.append((event.seq, event.json["message"]))
        return out

    async def expect_end(self, within: float = 10) -> None:
        async with asyncio.timeout(within):
            while True:
                try:
                    await self.next(within)
                except EndOfStream:
                    return

    def close(self) -> None:
        self.response.close()


async def open_stream(
    session: aiohttp.ClientSession,
    base_url: str,
    host: str,
    topic: str,
    *,
    token: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> SseStream:
    hdrs = {"Host": host, **(headers or {})}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    response = await session.get(
        f"{base_url}/realtime/topics/{topic}",
        headers=hdrs,
        params=query,
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
    )
    stream = SseStream(response)
    if response.status == 200:
        # The server opens every stream with a ':ok' comment: the subscription is live.
        first = await stream.next()
        assert first.comments[:1] == ["ok"], first
    return stream
