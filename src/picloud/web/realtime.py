"""``GET /realtime/topics/{topic}`` and ``GET /realtime?topic=a&topic=b``: Server-Sent
Events on the app's own host (SPEC §6), one topic or several on one connection.

Host -> app (404), token from ``Authorization: Bearer`` or ``?token=``, then
``picloud.authorize_subscribe`` (not_found -> 404, unauthorized -> 401, generic bodies),
all in one query. The handler parses the request and its resume cursor
(``Last-Event-ID`` or ``?last_event_id=``), authorises, opens the response and hands it
over to the subscribe sequence (picloud.realtime.subscribe: replay, backlog, live, and the
history_truncated and reset notices). Event ids are resume cursors
(picloud.realtime.cursor).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.http import HttpVersion11

from picloud.realtime.cursor import Cursor
from picloud.realtime.subscribe import Start, follow, plan
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
            request,
            check["app_id"],
            topic,
            check["epoch"],
            check["head"],
            check["oldest"],
            resume,
            presence=check["presence"],
            identity=check["identity"],
            blockers=check["blockers"],
        )


def stream_topics(request: web.Request) -> list[str]:
    """The ``?topic=`` list of a multiplexed stream: at least one, at most
    PICLOUD_REALTIME_MAX_TOPICS_PER_STREAM, none twice (400 otherwise)."""
    topics = request.query.getall("topic", [])
    limit = state_of(request).settings.realtime_max_topics_per_stream
    if not topics:
        raise bad_request("name at least one ?topic=")
    if len(topics) > limit:
        raise bad_request(f"at most {limit} topics on one stream")
    if len(set(topics)) != len(topics):
        raise bad_request("a topic is named twice")
    return topics


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
    topics = stream_topics(request)
    resume = stream_last_event_id(request, topics)
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
        Start(
            r["topic"],
            r["epoch"],
            r["head"],
            r["oldest"],
            resume.get(r["topic"]),
            presence=r["presence"],
            identity=r["identity"],
            blockers=tuple(r["blockers"]),
        )
        for r in rows
    ]
    app_id = rows[0]["app_id"]
    del rows  # not kept for the stream's lifetime (memory per idle stream)
    with subscriber_slot(request, app_id):
        return await serve_topics(request, app_id, starts, multiplexed=True)


async def serve_stream(
    request: web.Request,
    app_uuid: uuid.UUID,
    topic: str,
    epoch: int,
    head: int,
    oldest: int | None,
    resume: Cursor | None,
    *,
    blockers: Sequence[int] = (),
    operator: bool = False,
    presence: bool = False,
    identity: dict[str, Any] | None = None,
) -> web.StreamResponse:
    """Stream one topic: replay after ``resume`` from the log, then go live on the hub
    (also used by the dashboard's API-key stream route). ``blockers``: the publishing
    transactions that may still commit up to ``head`` (picloud.topic_position)."""
    start = Start(topic, epoch, head, oldest, resume, presence, identity, tuple(blockers))
    return await serve_topics(request, app_uuid, [start], operator=operator, multiplexed=False)


async def serve_topics(
    request: web.Request,
    app_uuid: uuid.UUID,
    starts: list[Start],
    *,
    operator: bool = False,
    multiplexed: bool,
) -> web.StreamResponse:
    """Stream authorised topics on one connection: open the response and run the subscribe
    sequence (picloud.realtime.subscribe) on it."""
    state = state_of(request)
    relay = state.roles.relay
    if relay is None:
        raise ApiError(503, "unavailable", "the realtime relay does not run on this node")
    if request.transport is None:
        raise ConnectionResetError("client went away")
    chunked = request.version >= HttpVersion11
    opened = plan(str(app_uuid), starts, multiplexed=multiplexed)
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
    await follow(
        relay,
        app_uuid,
        starts,
        opened,
        transport,
        response.write,
        chunked=chunked,
        operator=operator,
    )
    return response
