"""Who is here: the subjects present on a presence topic, cluster-wide (sql/34_presence.sql).

Two doors, one SQL statement each: the app's API (``topics:manage``) and the app's own
host with a subscriber token (authorised exactly as the topic's stream).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from picloud.web.auth import bearer_token, credentials
from picloud.web.errors import ApiError, not_found
from picloud.web.jsonio import json_response
from picloud.web.routing import routes
from picloud.web.sql import fetch_one
from picloud.web.topics import BASE

PRESENCE_OFF = 'this topic does not track presence (PATCH it with {"presence": true})'


def _answer(row: dict[str, Any]) -> web.Response:
    if not row["presence"]:
        raise ApiError(409, "conflict", PRESENCE_OFF)
    return json_response({"subjects": row["subjects"]})


@routes.get(
    BASE + "/{name}/presence",
    "Who is present on a topic, over every node",
    "topics",
    capability="topics:manage",
    statuses=(409,),
)
async def topic_presence(request: web.Request) -> web.Response:
    params = {**credentials(request), "topic": request.match_info["name"]}
    row = await fetch_one(request, "topic_presence_with_key", params)
    if row is None:
        raise not_found("no such topic")
    return _answer(row)


@routes.get(
    "/realtime/presence/{topic}",
    "Who is present on a topic (on the app's host, with a subscriber token)",
    "realtime",
    query=("token",),
    statuses=(401, 404, 409),
)
async def stream_presence(request: web.Request) -> web.Response:
    token = bearer_token(request) or request.query.get("token")
    params = {"host": request.host, "topic": request.match_info["topic"], "token": token}
    row = await fetch_one(request, "topic_presence_with_token", params)
    assert row is not None
    if row["app_id"] is None or row["verdict"] == "not_found":
        raise not_found()
    if row["verdict"] != "allow":
        raise ApiError(401, "unauthorized", "not authorized to subscribe")
    return _answer(row)
