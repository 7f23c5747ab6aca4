"""The SSE subscribe sequence, in one place: replay -> backlog -> live.

A stream follows one topic or several (multiplexed, one cursor for all: realtime.mux); either
way it is one hub Subscriber, in the channel of each of its topics. For
each topic it works out where the client stands (``Start``): nothing to tell, an
``event: history_truncated`` (its position is older than the retained log) or an
``event: reset`` (its cursor is not a position in the topic's current incarnation: another
epoch, or beyond the head; the stream then starts over from the incarnation's first
retained message). A topic's head is settled first: the stream waits until the
publishers that were in flight when the head was read have ended (usually none; it then
waits for nothing), so a message committed later never lands behind the stream's start.
The subscriber then joins each topic's hub channel before anything is written, so every
frame fanned out from then on is kept in its backlog while each topic's missed messages
are replayed from ``picloud.messages``, up to the settled position the channel had
reached; the backlog follows (without what the replays sent) and then the stream goes
live, all topics at once. The caller (the web layer) parses,
authorises, and hands over the response's transport and write function.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from picloud.queries import q
from picloud.realtime.cursor import Cursor
from picloud.realtime.hub import Subscriber
from picloud.realtime.mux import Position, start_position
from picloud.realtime.relay import FETCH_PAGE, Relay
from picloud.realtime.sse import OPENED, Frame, history_truncated, reset

Write = Callable[[bytes], Awaitable[None]]
SETTLE_POLL_SEC = 0.001


@dataclass(frozen=True, slots=True)
class Start:
    """Where one topic of a stream starts, read after the caller authorised it: the topic's
    incarnation (``epoch``), last drawn position (``head``), oldest retained one
    (``oldest``), the client's position (``resume``) and the transactions that may still
    commit a position up to the head (``blockers``, picloud.topic_position); whether the
    topic has presence, and who the subscriber is there (``identity``: {"subject","info"};
    None: not present)."""

    topic: str
    epoch: int
    head: int
    oldest: int | None
    resume: Cursor | None
    presence: bool = False
    identity: dict[str, Any] | None = None
    blockers: tuple[int, ...] = ()


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
    and (multiplexed) the stream's position in all its topics."""

    cursors: list[int]
    preamble: bytes
    position: Position | None


def plan(app_id: str, starts: list[Start], *, multiplexed: bool) -> Plan:
    """Positions and opening bytes of a stream of ``starts`` (of app ``app_id``). A
    multiplexed stream's first frame is its cursor alone, so a client can resume even
    before any message."""
    placed = [start_at(s) for s in starts]
    position = (
        start_position(
            app_id, {s.topic: (s.epoch, c) for s, (c, _) in zip(starts, placed, strict=True)}
        )
        if multiplexed
        else None
    )
    cursor = position.cursor if position is not None else None
    preamble = OPENED
    for s, (seq, notice) in zip(starts, placed, strict=True):
        if notice == "reset":
            preamble += reset(s.topic, s.epoch, s.oldest, seq, cursor)
        elif notice == "truncated":
            first = s.oldest if s.oldest is not None else s.head + 1
            preamble += history_truncated(seq, first, s.topic if multiplexed else None)
    if cursor is not None:
        preamble += b"id: %b\n\n" % cursor
    return Plan([c for c, _ in placed], preamble, position)


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
    subscribe to every topic, write the preamble, replay, drain the backlog, go live."""
    app_id = str(app_uuid)
    await _settle_heads(relay, app_uuid, starts, transport)
    hub = relay.hub
    sub = Subscriber(
        (app_id, starts[0].topic),
        transport,
        chunked=chunked,
        cursor=opened.cursors[0],
        operator=operator,
        position=opened.position,
    )
    uptos: list[int] = []
    try:
        for s in starts:
            key = (app_id, s.topic)
            channel, created = hub.subscribe(sub, s.head, s.epoch, key)
            if created:
                relay.channel_created(key)
            # Settled up to here; what the channel fans out after it goes to the backlog.
            uptos.append(max(s.head, channel.last_seq))
        await write(opened.preamble)
        opened.preamble = b""  # not kept for the stream's lifetime (memory per idle stream)
        for s in starts:
            if s.presence:  # after the preamble: the stream opens with ':ok'
                relay.presence.attach(sub, (app_id, s.topic), s.identity)
        for s, upto in zip(starts, uptos, strict=True):
            if sub.seq(s.topic) < upto and not sub.done.done():
                await _replay(relay, write, sub, app_uuid, s, upto)
        # Frames the hub kept while we replayed, without what the replays already sent;
        # then the stream goes live, all topics together (no await in between).
        while not sub.done.done() and sub.backlog:
            kept, sub.backlog, sub.backlog_bytes = sub.backlog, [], 0
            await _write_kept(write, sub, kept)
        del uptos
        if not sub.done.done():
            sub.go_live()
        await sub.done
    finally:
        hub.unsubscribe(sub)
        relay.presence.detach(sub)


async def _write_kept(write: Write, sub: Subscriber, kept: list[tuple[str, Frame]]) -> None:
    """Write a backlog (frames with their topic, in arrival order), each topic's run of
    frames after what was already sent of it."""
    run: list[Frame] = []
    topic = ""
    for t, frame in kept:
        if t != topic and run:
            await _write(write, sub, topic, run)
            run = []
        topic = t
        run.append(frame)
    if run:
        await _write(write, sub, topic, run)


async def _write(write: Write, sub: Subscriber, topic: str, frames: list[Frame]) -> None:
    """Write frames of ``topic`` outside the hub (replay, backlog), after what was already
    sent of it."""
    if sub.position is None:
        frames = [f for f in frames if f.seq > sub.cursor]
        if not frames:
            return
        sub.cursor = frames[-1].seq
        await write(b"".join(f.raw for f in frames))
        return
    step = sub.position.advance(topic, frames)
    sub.position = step.position
    if step.count:
        await write(step.raw)


async def _settle_heads(
    relay: Relay, app_id: uuid.UUID, starts: list[Start], transport: asyncio.Transport
) -> None:
    """Wait until no transaction that may commit a position up to a topic's head is still
    in flight (asked every ``SETTLE_POLL_SEC``)."""
    pending = [(s.topic, x) for s in starts for x in s.blockers]
    while pending:
        params = {
            "app_ids": [app_id] * len(pending),
            "topics": [t for t, _ in pending],
            "xids": [x for _, x in pending],
        }
        async with relay.state.db.connection() as conn:
            rows = await (await conn.execute(q("relay_blockers"), params)).fetchall()
        held = {(r["topic"], r["xid"]) for r in rows}
        pending = [p for p in pending if p in held]
        if pending:
            if transport.is_closing():
                raise ConnectionResetError("client went away")
            await asyncio.sleep(SETTLE_POLL_SEC)


async def _replay(
    relay: Relay, write: Write, sub: Subscriber, app_id: uuid.UUID, start: Start, upto: int
) -> None:
    while not sub.done.done():
        params = {
            "app_id": app_id,
            "topic": start.topic,
            "epoch": start.epoch,
            "after": sub.seq(start.topic),
            "upto": upto,
            "limit": FETCH_PAGE,
        }
        async with relay.state.db.connection() as conn:
            rows = await (await conn.execute(q("replay_messages"), params)).fetchall()
        if not rows:
            return
        epoch = start.epoch
        frames = [Frame.message(epoch, r["seq"], r["data"]) for r in rows]
        await _write(write, sub, start.topic, frames)
        if len(rows) < FETCH_PAGE:
            return
