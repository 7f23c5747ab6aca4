"""The SSE subscribe sequence, in one place: replay -> backlog -> live.

A stream follows one topic or several (multiplexed, one cursor for all: realtime.mux). For
each topic it works out where the client stands (``Start``): nothing to tell, an
``event: history_truncated`` (its position is older than the retained log) or an
``event: reset`` (its cursor is not a position in the topic's current incarnation: another
epoch, or beyond the head; the stream then starts over from the incarnation's first
retained message). Each topic's subscriber joins its hub channel before anything is
written, so every frame fanned out from then on is kept in its backlog while the topic's
missed messages are replayed from ``picloud.messages``; the backlogs follow (without what
the replays sent) and then all topics go live at once. The caller (the web layer) parses,
authorises, and hands over the response's transport and write function.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from picloud.queries import q
from picloud.realtime.cursor import Cursor
from picloud.realtime.hub import Subscriber
from picloud.realtime.mux import Mux
from picloud.realtime.relay import FETCH_PAGE, Relay
from picloud.realtime.sse import OPENED, Frame, history_truncated, reset

Write = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Start:
    """Where one topic of a stream starts, read after the caller authorised it: the topic's
    incarnation (``epoch``), last sequence number (``head``), oldest retained one
    (``oldest``) and the client's position (``resume``)."""

    topic: str
    epoch: int
    head: int
    oldest: int | None
    resume: Cursor | None


def start_at(start: Start) -> tuple[int, Literal["reset", "truncated"] | None]:
    """The last sequence number already seen of a topic, and what the client must be told."""
    first = start.oldest if start.oldest is not None else start.head + 1
    resume = start.resume
    if resume is None:
        return start.head, None
    if resume.seq > start.head or resume.epoch not in (None, start.epoch):
        # Not a position in this incarnation (a plain id is taken as one of it).
        return first - 1, "reset"
    return resume.seq, "truncated" if first > resume.seq + 1 else None


@dataclass(slots=True)
class Plan:
    """What a stream opens with: each topic's position, the notices before any message,
    and (multiplexed) the stream's cursor."""

    cursors: list[int]
    preamble: bytes
    mux: Mux | None


def plan(starts: list[Start], *, multiplexed: bool, chunked: bool) -> Plan:
    """Positions and opening bytes of a stream of ``starts``. A multiplexed stream's first
    frame is its cursor alone, so a client can resume even before any message."""
    placed = [start_at(s) for s in starts]
    mux = (
        Mux(
            {s.topic: (s.epoch, c) for s, (c, _) in zip(starts, placed, strict=True)},
            chunked=chunked,
        )
        if multiplexed
        else None
    )
    preamble = OPENED
    for s, (cursor, notice) in zip(starts, placed, strict=True):
        if notice == "reset":
            preamble += reset(s.topic, s.epoch, s.oldest, cursor, mux.cursor() if mux else None)
        elif notice == "truncated":
            first = s.oldest if s.oldest is not None else s.head + 1
            preamble += history_truncated(cursor, first, s.topic if mux else None)
    if mux is not None:
        preamble += b"id: %b\n\n" % mux.cursor()
    return Plan([c for c, _ in placed], preamble, mux)


async def follow(
    relay: Relay,
    app_uuid: uuid.UUID,
    starts: list[Start],
    opened: Plan,
    transport: asyncio.Transport,
    write: Write,
    *,
    chunked: bool,
    operator: bool = False,
) -> None:
    """Run the stream until it ends (client gone, overflow, topic closed, stopping):
    subscribe every topic, write the preamble, replay, drain the backlogs, go live."""
    app_id = str(app_uuid)
    subs: list[tuple[Subscriber, Start]] = []
    replays: list[bool] = []
    try:
        for s, cursor in zip(starts, opened.cursors, strict=True):
            sub = Subscriber(
                (app_id, s.topic),
                transport,
                chunked=chunked,
                cursor=cursor,
                operator=operator,
                mux=opened.mux,
            )
            channel, created = relay.hub.subscribe(sub, s.head, s.epoch)
            subs.append((sub, s))
            if created:
                relay.channel_created(sub.key)
            replays.append(sub.cursor < max(s.head, channel.last_seq))
        await write(opened.preamble)
        for (sub, s), replay in zip(subs, replays, strict=True):
            if replay and not _ended(subs):
                await _replay(relay, write, sub, app_uuid, s.topic, s.epoch)
        # Frames the hub kept while we replayed, without what the replays already sent;
        # then all topics go live together (no await in between).
        while not _ended(subs) and any(sub.backlog for sub, _ in subs):
            for sub, _ in subs:
                frames, sub.backlog, sub.backlog_bytes = sub.backlog, [], 0
                await _write(write, sub, [f for f in frames if f.seq > sub.cursor])
        if not _ended(subs):
            for sub, _ in subs:
                sub.go_live()
        await asyncio.wait([sub.done for sub, _ in subs], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sub, _ in subs:
            relay.hub.unsubscribe(sub)


def _ended(subs: list[tuple[Subscriber, Start]]) -> bool:
    return any(sub.done.done() for sub, _ in subs)


async def _write(write: Write, sub: Subscriber, frames: list[Frame]) -> None:
    """Write frames of ``sub``'s topic outside the hub (replay, backlog)."""
    if not frames:
        return
    sub.cursor = frames[-1].seq
    if sub.mux is None:
        await write(b"".join(f.raw for f in frames))
    else:
        await write(b"".join(sub.mux.encode(sub.key[1], frames)))


async def _replay(
    relay: Relay, write: Write, sub: Subscriber, app_id: uuid.UUID, topic: str, epoch: int
) -> None:
    while not sub.done.done():
        params = {
            "app_id": app_id,
            "topic": topic,
            "epoch": epoch,
            "after": sub.cursor,
            "limit": FETCH_PAGE,
        }
        async with relay.state.db.connection() as conn:
            rows = await (await conn.execute(q("replay_messages"), params)).fetchall()
        if not rows:
            return
        await _write(write, sub, [Frame.message(epoch, r["seq"], r["data"]) for r in rows])
        if len(rows) < FETCH_PAGE:
            return
