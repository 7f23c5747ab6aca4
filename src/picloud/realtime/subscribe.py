"""The SSE subscribe sequence, in one place: replay -> backlog -> live.

A stream follows one topic or several (multiplexed, one cursor for all: realtime.mux). For
each topic it works out where the client stands (``Start``): nothing to tell, an
``event: history_truncated`` (its position is older than the retained log) or an
``event: reset`` (its cursor is not a position in the topic's current incarnation: another
epoch, or beyond the head; the stream then starts over from the incarnation's first
retained message). A topic's head is settled first: the stream waits until the
publishers that were in flight when the head was read have ended (usually none; it then
waits for nothing), so a message committed later never lands behind the stream's start.
Each topic's subscriber then joins its hub channel before anything is written, so every
frame fanned out from then on is kept in its backlog while the topic's missed messages
are replayed from ``picloud.messages``, up to the settled position the channel had
reached; the backlogs follow (without what the replays sent) and then all topics go live
at once. The caller (the web layer) parses,
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
from picloud.realtime.mux import Mux
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
    await _settle_heads(relay, app_uuid, starts, transport)
    subs: list[tuple[Subscriber, Start]] = []
    uptos: list[int] = []
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
            # Settled up to here; what the channel fans out after it goes to the backlog.
            uptos.append(max(s.head, channel.last_seq))
        await write(opened.preamble)
        for sub, s in subs:
            if s.presence:  # after the preamble: the stream opens with ':ok'
                relay.presence.attach(sub, s.identity)
        for (sub, s), upto in zip(subs, uptos, strict=True):
            if sub.cursor < upto and not _ended(subs):
                await _replay(relay, write, sub, app_uuid, s, upto)
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
            relay.presence.detach(sub)


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
            "after": sub.cursor,
            "upto": upto,
            "limit": FETCH_PAGE,
        }
        async with relay.state.db.connection() as conn:
            rows = await (await conn.execute(q("replay_messages"), params)).fetchall()
        if not rows:
            return
        epoch = start.epoch
        await _write(write, sub, [Frame.message(epoch, r["seq"], r["data"]) for r in rows])
        if len(rows) < FETCH_PAGE:
            return
