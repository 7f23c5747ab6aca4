"""``GET /realtime/topics/{topic}`` and ``GET /realtime?topic=a&topic=b``: Server-Sent
Events on the app's own host (SPEC §6), one topic or several on one connection.

Host -> app (404), token from ``Authorization: Bearer`` or ``?token=``, then
``picloud.authorize_subscribe`` (not_found -> 404, unauthorized -> 401, generic bodies),
all in one query. The stream replays what ``Last-Event-ID`` (or ``?last_event_id=``)
missed from ``picloud.messages`` and then goes live on the relay's hub; the handler just
waits while the hub writes frames. When the requested position is older than the
retained log, an ``event: history_truncated`` comes first; when it is not a position in
the topic's current incarnation (another epoch: the topic was deleted and created again;
or beyond its head), an ``event: reset`` comes first and the stream starts over from the
incarnation's first retained message. Event ids are resume cursors
(picloud.realtime.cursor).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from aiohttp.http import HttpVersion11

from picloud.realtime.cursor import Cursor
from picloud.realtime.hub import Subscriber
from picloud.realtime.mux import Mux
from picloud.realtime.relay import FETCH_PAGE
from picloud.realtime.sse import OPENED, Frame, history_truncated, reset
from picloud.web.auth import bearer_token
from picloud.web.errors import ApiError, bad_request, not_found
from picloud.web.params import last_event_id, stream_last_event_id
from picloud.web.routing import routes
from picloud.web.sql import fetch_all, fetch_one
from picloud.web.state import state_of
from picloud.web.subscriber_caps import subscriber_slot

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


@routes.get(
    "/realtime/topics/{topic}",
    "Subscribe to a topic over Server-Sent Events (on the app's host)",
    "realtime",
    query=("token", "last_event_id"),
    headers=("Last-Event-ID",),
    response_content="text/event-stream",
    statuses=(401, 429),
)
async def subscribe(request: web.Request) -> web.StreamResponse:
    topic = request.match_info["topic"]
    resume = last_event_id(request)
    token = bearer_token(request) or request.query.get("token")
    params = {"host": request.host, "topic": topic, "token": token}
    check = await fetch_one(request, "subscribe_check", params)
    assert check is not None
    if check["app_id"] is None or check["verdict"] == "not_found":
        raise not_found()
    if check["verdict"] != "allow":
        raise ApiError(401, "unauthorized", "not authorized to subscribe")
    with subscriber_slot(request, check["app_id"]):
        return await serve_stream(
            request, check["app_id"], topic, check["epoch"], check["head"], check["oldest"], resume
        )


@routes.get(
    "/realtime",
    "Subscribe to several topics over one Server-Sent Events stream (?topic= repeated)",
    "realtime",
    query=("topic", "token", "last_event_id"),
    headers=("Last-Event-ID",),
    response_content="text/event-stream",
    statuses=(401, 404, 429),
)
async def subscribe_many(request: web.Request) -> web.StreamResponse:
    topics = request.query.getall("topic", [])
    limit = state_of(request).settings.realtime_max_topics_per_stream
    if not topics:
        raise bad_request("name at least one ?topic=")
    if len(topics) > limit:
        raise bad_request(f"at most {limit} topics on one stream")
    if len(set(topics)) != len(topics):
        raise bad_request("a topic is named twice")
    resume = stream_last_event_id(request)
    token = bearer_token(request) or request.query.get("token")
    params = {"host": request.host, "topics": topics, "token": token}
    rows = await fetch_all(request, "subscribe_check_many", params)
    # Authorised per topic as the single-topic route; one refusal refuses the whole stream
    # with that route's status, never saying which topic.
    if rows[0]["app_id"] is None or any(r["verdict"] == "not_found" for r in rows):
        raise not_found()
    if any(r["verdict"] != "allow" for r in rows):
        raise ApiError(401, "unauthorized", "not authorized to subscribe")
    starts = [
        Start(r["topic"], r["epoch"], r["head"], r["oldest"], resume.get(r["topic"])) for r in rows
    ]
    with subscriber_slot(request, rows[0]["app_id"]):
        return await serve_topics(request, rows[0]["app_id"], starts, multiplexed=True)


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


def _start_at(start: Start) -> tuple[int, Literal["reset", "truncated"] | None]:
    """The last sequence number already seen of a topic, and what the client must be told."""
    first = start.oldest if start.oldest is not None else start.head + 1
    resume = start.resume
    if resume is None:
        return start.head, None
    if resume.seq > start.head or resume.epoch not in (None, start.epoch):
        # Not a position in this incarnation (a plain id is taken as one of it).
        return first - 1, "reset"
    return resume.seq, "truncated" if first > resume.seq + 1 else None


async def serve_stream(
    request: web.Request,
    app_uuid: uuid.UUID,
    topic: str,
    epoch: int,
    head: int,
    oldest: int | None,
    resume: Cursor | None,
    *,
    operator: bool = False,
) -> web.StreamResponse:
    """Stream one topic: replay after ``resume`` from the log, then go live on the hub
    (also used by the dashboard's API-key stream route)."""
    start = Start(topic, epoch, head, oldest, resume)
    return await serve_topics(request, app_uuid, [start], operator=operator, multiplexed=False)


async def serve_topics(
    request: web.Request,
    app_uuid: uuid.UUID,
    starts: list[Start],
    *,
    operator: bool = False,
    multiplexed: bool,
) -> web.StreamResponse:
    """Stream topics on one connection: each replays after its position from the log while
    the hub keeps its live frames in a backlog; the backlogs (without what the replays
    sent) follow, and then all go live at once. A multiplexed stream's frames carry one
    cursor for all its topics (picloud.realtime.mux); its first frame is that cursor alone,
    so a client can resume even before any message."""
    state = state_of(request)
    relay = state.roles.relay
    if relay is None:
        raise ApiError(503, "unavailable", "the realtime relay does not run on this node")
    if request.transport is None:
        raise ConnectionResetError("client went away")

    chunked = request.version >= HttpVersion11
    cursors = [_start_at(s) for s in starts]
    mux = (
        Mux(
            {s.topic: (s.epoch, c) for s, (c, _) in zip(starts, cursors, strict=True)},
            chunked=chunked,
        )
        if multiplexed
        else None
    )
    preamble = OPENED
    for s, (cursor, notice) in zip(starts, cursors, strict=True):
        if notice == "reset":
            preamble += reset(s.topic, s.epoch, s.oldest, cursor, mux.cursor() if mux else None)
        elif notice == "truncated":
            first = s.oldest if s.oldest is not None else s.head + 1
            preamble += history_truncated(cursor, first, s.topic if mux else None)
    if mux is not None:
        preamble += b"id: %b\n\n" % mux.cursor()

    # A small kernel send buffer: without it, loopback autotuning lets a client that never
    # reads pin megabytes in the kernel before the hub's limits see anything.
    sock = request.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, state.settings.realtime_socket_sndbuf)
    response = web.StreamResponse(headers=SSE_HEADERS)
    if chunked:
        response.enable_chunked_encoding()
    await response.prepare(request)
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("client went away")
    app_id = str(app_uuid)
    subs: list[tuple[Subscriber, Start]] = []
    replays: list[bool] = []
    try:
        for s, (cursor, _) in zip(starts, cursors, strict=True):
            sub = Subscriber(
                (app_id, s.topic),
                transport,
                chunked=chunked,
                cursor=cursor,
                operator=operator,
                mux=mux,
            )
            channel, created = relay.hub.subscribe(sub, s.head, s.epoch)
            subs.append((sub, s))
            if created:
                relay.channel_created(sub.key)
            replays.append(sub.cursor < max(s.head, channel.last_seq))
        await response.write(preamble)
        for (sub, s), replay in zip(subs, replays, strict=True):
            if replay and not _ended(subs):
                await _replay(request, response, sub, app_uuid, s.topic, s.epoch)
        # Frames the hub kept while we replayed, without what the replays already sent;
        # then all topics go live together (no await in between).
        while not _ended(subs) and any(sub.backlog for sub, _ in subs):
            for sub, _ in subs:
                frames, sub.backlog, sub.backlog_bytes = sub.backlog, [], 0
                await _write(response, sub, [f for f in frames if f.seq > sub.cursor])
        if not _ended(subs):
            for sub, _ in subs:
                sub.go_live()
        await asyncio.wait([sub.done for sub, _ in subs], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sub, _ in subs:
            relay.hub.unsubscribe(sub)
    return response


def _ended(subs: list[tuple[Subscriber, Start]]) -> bool:
    return any(sub.done.done() for sub, _ in subs)


async def _write(response: web.StreamResponse, sub: Subscriber, frames: list[Frame]) -> None:
    """Write frames of ``sub``'s topic outside the hub (replay, backlog)."""
    if not frames:
        return
    sub.cursor = frames[-1].seq
    if sub.mux is None:
        await response.write(b"".join(f.raw for f in frames))
    else:
        await response.write(b"".join(sub.mux.encode(sub.key[1], frames)))


async def _replay(
    request: web.Request,
    response: web.StreamResponse,
    sub: Subscriber,
    app_id: object,
    topic: str,
    epoch: int,
) -> None:
    while not sub.done.done():
        params = {
            "app_id": app_id,
            "topic": topic,
            "epoch": epoch,
            "after": sub.cursor,
            "limit": FETCH_PAGE,
        }
        rows = await fetch_all(request, "replay_messages", params)
        if not rows:
            return
        await _write(response, sub, [Frame.message(epoch, r["seq"], r["data"]) for r in rows])
        if len(rows) < FETCH_PAGE:
            return
