"""``GET /realtime/topics/{topic}``: Server-Sent Events on the app's own host (SPEC §6).

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

import socket
import uuid

from aiohttp import web
from aiohttp.http import HttpVersion11

from picloud.realtime.cursor import Cursor
from picloud.realtime.hub import Subscriber
from picloud.realtime.relay import FETCH_PAGE, Relay
from picloud.realtime.sse import OPENED, Frame, history_truncated, reset
from picloud.web.auth import bearer_token
from picloud.web.errors import ApiError, not_found
from picloud.web.params import last_event_id
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
    """Stream one topic: replay after ``resume`` from the log, then go live on the hub.

    ``epoch`` is the topic's incarnation, ``head`` its last sequence number and ``oldest``
    its oldest retained one, read after the caller authorised the subscription (also used
    by the dashboard's API-key stream route).
    """
    state = state_of(request)
    relay = state.roles.get("relay")
    if not isinstance(relay, Relay):
        raise ApiError(503, "unavailable", "the realtime relay does not run on this node")
    if request.transport is None:
        raise ConnectionResetError("client went away")

    first = oldest if oldest is not None else head + 1
    preamble = OPENED
    if resume is None:
        cursor = head
    elif resume.seq > head or resume.epoch not in (None, epoch):
        # Not a position in this incarnation (a plain id is taken as one of it).
        cursor = first - 1
        preamble += reset(topic, epoch, oldest, cursor)
    else:
        cursor = resume.seq
        if first > cursor + 1:
            preamble += history_truncated(cursor, first)

    # A small kernel send buffer: without it, loopback autotuning lets a client that never
    # reads pin megabytes in the kernel before the hub's limits see anything.
    sock = request.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, state.settings.realtime_socket_sndbuf)
    response = web.StreamResponse(headers=SSE_HEADERS)
    chunked = request.version >= HttpVersion11
    if chunked:
        response.enable_chunked_encoding()
    await response.prepare(request)
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("client went away")
    app_id = str(app_uuid)
    sub = Subscriber((app_id, topic), transport, chunked=chunked, cursor=cursor, operator=operator)
    channel, created = relay.hub.subscribe(sub, head, epoch)
    if created:
        relay.channel_created(sub.key)
    try:
        await response.write(preamble)
        if sub.cursor < max(head, channel.last_seq):
            await _replay(request, response, sub, app_uuid, topic, epoch)
        # Frames the hub kept while we replayed, without what the replay already sent.
        while sub.backlog and not sub.done.done():
            frames, sub.backlog, sub.backlog_bytes = sub.backlog, [], 0
            data = b"".join(f.raw for f in frames if f.seq > sub.cursor)
            if data:
                sub.cursor = max(sub.cursor, frames[-1].seq)
                await response.write(data)
        if not sub.done.done():
            sub.go_live()
        await sub.done
    finally:
        relay.hub.unsubscribe(sub)
    return response


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
        await response.write(b"".join(Frame.message(epoch, r["seq"], r["data"]).raw for r in rows))
        sub.cursor = rows[-1]["seq"]
        if len(rows) < FETCH_PAGE:
            return
