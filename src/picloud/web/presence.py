"""Who is here: the subjects present on a presence topic, cluster-wide (sql/34_presence.sql).

Two doors, one SQL statement each: the app's API (``topics:manage``) and the app's own
host with a subscriber token (authorised exactly as the topic's stream).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from picloud.web.auth import Principal, bearer_token, require_app
from picloud.web.errors import ApiError, forbidden, not_found, unauthorized
from picloud.web.jsonio import json_response
from picloud.web.params import path_uuid
from picloud.web.routing import routes
from picloud.web.sql import fetch_one
from picloud.web.topics import BASE, TOPIC_NAME, path_topic

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
    key = bearer_token(request)
    if key is None:
        raise unauthorized()
    app_id = path_uuid(request, "app_id")
    if not TOPIC_NAME.fullmatch(request.match_info["name"]):
        await require_app(request, "topics:manage")  # authorise first, then say what is wrong
        path_topic(request)
    params = {"key": key, "app_id": app_id, "topic": request.match_info["name"]}
    row = await fetch_one(request, "topic_presence_with_key", params)
    if row is None:
        raise unauthorized()
    if row["app_id"] is None:
        raise not_found("no such app")
    principal = Principal(row["key_id"], row["key_app_id"], frozenset(row["capabilities"]))
    if not principal.allows("topics:manage", app_id):
        raise forbidden()
    if row["topic"] is None:
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
