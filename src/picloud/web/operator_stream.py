"""``GET /api/v1/apps/{app_id}/stream?topic=a&topic=b``: an operator follows several topics
of an app (internal ones too) on one Server-Sent Events stream with an API key
(``topics:manage``), with the same cursor, replay and presence frames as the app host's
``GET /realtime`` (the dashboard's live tail of several topics)."""

from __future__ import annotations

from aiohttp import web

from picloud.realtime.subscribe import Start
from picloud.web.auth import credentials
from picloud.web.errors import not_found
from picloud.web.params import stream_last_event_id
from picloud.web.realtime import serve_topics, stream_topics
from picloud.web.routing import routes
from picloud.web.sql import fetch_all


@routes.get(
    "/api/v1/apps/{app_id}/stream",
    "Follow several topics on one Server-Sent Events stream with an API key (?topic= repeated)",
    "topics",
    capability="topics:manage",
    query=("topic", "last_event_id"),
    headers=("Last-Event-ID",),
    response_content="text/event-stream",
)
async def operator_stream(request: web.Request) -> web.StreamResponse:
    topics = stream_topics(request)
    resume = stream_last_event_id(request, topics)
    auth = credentials(request)
    rows = await fetch_all(request, "operator_stream_check", {**auth, "topics": topics})
    if any(r["epoch"] is None for r in rows):
        raise not_found("no such topic")
    starts = [
        Start(
            r["topic"],
            r["epoch"],
            r["head"],
            r["oldest"],
            resume.get(r["topic"]),
            presence=r["presence"],
            blockers=tuple(r["blockers"]),
        )
        for r in rows
    ]
    del rows
    return await serve_topics(request, auth["app_id"], starts, operator=True, multiplexed=True)
