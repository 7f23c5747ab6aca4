"""Topics, publishing, history and subscriber tokens (SPEC §6)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from picloud import jsonnum
from picloud.realtime.cursor import format_cursor, parse_cursor
from picloud.web.auth import credentials
from picloud.web.bodies import read_body
from picloud.web.errors import ApiError, bad_request, not_found
from picloud.web.jsonio import (
    get_bool,
    get_int,
    get_str,
    get_str_list,
    json_response,
    read_object,
    read_patch,
)
from picloud.web.params import query_int
from picloud.web.publish_group import Publish
from picloud.web.routing import routes
from picloud.web.sql import fetch_all, fetch_one
from picloud.web.state import publish_groups

# The publish route's early check of a name (topic_name, path_topic); every other route
# leaves names to SQL (picloud.check_topic_name).
TOPIC_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
NAME_RULE = "topic names are 1-128 characters of A-Z a-z 0-9 _ . : -"
AUTH_MODES = ("public", "token")
TOKEN_TTL_MAX_SEC = 30 * 24 * 3600  # for the OpenAPI document; SQL enforces it

TOPIC_FLAGS = {
    "external_subscribable": {"type": "boolean"},
    "auth_mode": {"type": "string", "enum": list(AUTH_MODES)},
    "presence": {"type": "boolean", "description": "who is here"},
}
BASE = "/api/v1/apps/{app_id}/topics"


def topic_name(value: Any) -> str:
    if not isinstance(value, str) or not TOPIC_NAME.fullmatch(value):
        raise bad_request(f"invalid topic name: {NAME_RULE}")
    return value


def path_topic(request: web.Request) -> str:
    return topic_name(request.match_info["name"])


@routes.post(
    BASE,
    "Create a topic",
    "topics",
    capability="topics:manage",
    ok_status=201,
    request_body={
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
            **TOPIC_FLAGS,
        },
    },
)
async def create_topic(request: web.Request) -> web.Response:
    body = await read_object(request, {"name", *TOPIC_FLAGS})
    params = {
        **credentials(request),
        "name": get_str(body, "name"),
        "external_subscribable": bool(get_bool(body, "external_subscribable")),
        "auth_mode": get_str(body, "auth_mode", required=False),
        "presence": get_bool(body, "presence"),  # NULL: picloud.create_topic's default
    }
    return json_response(await fetch_one(request, "create_topic_as", params), status=201)


@routes.get(BASE, "List topics", "topics", capability="topics:manage")
async def list_topics(request: web.Request) -> web.Response:
    rows = await fetch_all(request, "list_topics_as", credentials(request))
    return json_response({"topics": rows})


@routes.get(BASE + "/{name}", "Get a topic", "topics", capability="topics:manage")
async def get_topic(request: web.Request) -> web.Response:
    params = {**credentials(request), "name": request.match_info["name"]}
    row = await fetch_one(request, "get_topic", params)
    if row is None:
        raise not_found("no such topic")
    return json_response(row)


@routes.patch(
    BASE + "/{name}",
    "Change a topic's flags (streams end when access narrows)",
    "topics",
    capability="topics:manage",
    request_body={"type": "object", "properties": TOPIC_FLAGS},
)
async def update_topic(request: web.Request) -> web.Response:
    body = await read_patch(request, set(TOPIC_FLAGS))
    params = {
        **credentials(request),
        "name": request.match_info["name"],
        "external_subscribable": get_bool(body, "external_subscribable"),
        "auth_mode": get_str(body, "auth_mode", required=False),
        "presence": get_bool(body, "presence"),
    }
    row = await fetch_one(request, "update_topic_as", params)
    if row is None:
        raise not_found("no such topic")
    return json_response(row)


@routes.delete(
    BASE + "/{name}",
    "Delete a topic, its messages, and its live streams on every node",
    "topics",
    capability="topics:manage",
    ok_status=204,
)
async def delete_topic(request: web.Request) -> web.Response:
    params = {**credentials(request), "name": request.match_info["name"]}
    row = await fetch_one(request, "delete_topic_as", params)
    if row is None:
        raise not_found("no such topic")
    return web.Response(status=204)


@routes.post(
    BASE + "/{name}/messages",
    "Publish a message, or a batch of messages in one statement",
    "topics",
    capability="topics:publish",
    ok_status=201,
    request_body={
        "type": "object",
        "description": '{"message": <any JSON>} -> {"id", "published_at"}; '
        '{"messages": [...]} -> {"ids", "published_at"} (all or nothing)',
        "properties": {"message": {}, "messages": {"type": "array"}},
    },
)
async def publish(request: web.Request) -> web.Response:
    # The hot path: the request joins the node's next publish group, whose one statement
    # authorises it (picloud.authorize), validates its messages and publishes them, each
    # request by itself (picloud.publish_group).
    creds = credentials(request)
    try:
        messages, batch = await _publish_body(request)
    except ApiError:
        # A malformed body is told only to who may publish: the key check alone first.
        await fetch_one(request, "publish_authorize", creds)
        raise
    outcome = await publish_groups(request).publish(
        Publish(
            topic=request.match_info["name"],
            messages=messages,
            single=batch is None,
            count=1 if batch is None else len(batch),
            key=creds["api_key"],
            app_id=creds["app_id"],
            capability=creds["capability"],
        )
    )
    if outcome.error_state is not None or outcome.ids is None:
        raise outcome.refusal()
    # published_at is the database's JSON text of the time, as in the SSE frames.
    ids, at = outcome.ids, outcome.published_at
    if batch is None:
        return json_response({"id": ids[0], "published_at": at}, status=201)
    return json_response({"ids": ids, "published_at": at}, status=201)


async def _publish_body(request: web.Request) -> tuple[str, list[Any] | None]:
    """A publish body as the JSON text of its message (or of its list of messages), and
    the batch (None for a single ``message``); 400 when it is neither."""
    body = await read_object(request, {"message", "messages"})
    if ("message" in body) == ("messages" in body):
        raise bad_request("give either 'message' (any JSON value) or 'messages' (a list of them)")
    if "messages" in body and not isinstance(body["messages"], list):
        raise bad_request("'messages' must be a list of messages")
    if "message" in body:
        return jsonnum.dumps(body["message"]), None
    return jsonnum.dumps(body["messages"]), body["messages"]


@routes.get(
    BASE + "/{name}/messages",
    "Message history after a cursor (an SSE event id, or a message id)",
    "topics",
    capability="topics:publish",
    query=("after", "limit"),
)
async def history(request: web.Request) -> web.Response:
    try:
        after = parse_cursor(request.query.get("after") or "0")
    except ValueError as exc:
        raise bad_request(f"query parameter 'after': {exc}") from None
    params = {
        **credentials(request),
        "topic": request.match_info["name"],
        "epoch": after.epoch,
        "after": after.seq,
        "limit": query_int(request, "limit", 100, minimum=1, maximum=1000),
    }
    rows = await fetch_all(request, "message_history", params)
    if not rows:
        raise not_found("no such topic")
    epoch = rows[0]["epoch"]
    messages = [
        {
            "id": r["id"],
            "cursor": format_cursor(epoch, r["id"]),
            "topic": r["topic"],
            "message": r["message"],
            "published_at": r["published_at"],
        }
        for r in rows
        if r["id"] is not None
    ]
    # reset: ``after`` was not a position in this incarnation of the topic (it was deleted
    # and created again, or the position is beyond its head): these are from its start.
    return json_response({"epoch": epoch, "reset": rows[0]["reset"], "messages": messages})


@routes.post(
    BASE + "/{name}/tokens",
    'Mint a subscriber token ("publish": true also needs topics:publish)',
    "topics",
    capability="tokens:mint",
    ok_status=201,
    request_body={
        "type": "object",
        "properties": {
            "ttl_seconds": {"type": "integer"},
            "publish": {"type": "boolean", "description": "may publish to the topic"},
            "subject": {"type": "string", "description": "the frames it publishes say from"},
        },
    },
)
async def mint_token(request: web.Request) -> web.Response:
    raw = await read_body(request)
    body = await read_object(request, {"ttl_seconds", "publish", "subject"}) if raw.strip() else {}
    params = {
        **credentials(request),
        "topic": request.match_info["name"],
        "ttl_seconds": get_int(body, "ttl_seconds"),  # NULL: picloud's default
        "can_publish": bool(get_bool(body, "publish")),
        "subject": get_str(body, "subject", required=False),
    }
    row = await fetch_one(request, "mint_token", params)
    assert row is not None
    return json_response({"token": row["token"], "expires_at": row["expires_at"]}, status=201)


@routes.post(
    "/api/v1/apps/{app_id}/tokens",
    "Mint a subscriber token for several topics (one multiplexed stream, GET /realtime)",
    "topics",
    capability="tokens:mint",
    ok_status=201,
    request_body={
        "type": "object",
        "required": ["topics"],
        "properties": {
            "topics": {"type": "array", "items": {"type": "string"}},
            "ttl_seconds": {"type": "integer"},
            "subject": {"type": "string", "description": "the app's user id"},
            "info": {
                "type": "object",
                "description": "what presence shows of the subject (at most 1 KiB)",
            },
        },
    },
)
async def mint_stream_token(request: web.Request) -> web.Response:
    body = await read_object(request, {"topics", "ttl_seconds", "subject", "info"})
    info = body.get("info")
    params = {
        **credentials(request),
        "topics": get_str_list(body, "topics"),
        "ttl_seconds": get_int(body, "ttl_seconds"),  # NULL: picloud's default
        "subject": get_str(body, "subject", required=False),
        "info": None if info is None else jsonnum.dumps(info),
    }
    row = await fetch_one(request, "mint_stream_token", params)
    assert row is not None
    return json_response({"token": row["token"], "expires_at": row["expires_at"]}, status=201)
