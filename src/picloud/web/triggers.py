"""Triggers: run a handler when a source (kv, docs, files, cron, pubsub, dead_letter) changes."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from psycopg.types.json import Jsonb

from picloud.web.auth import require_app
from picloud.web.errors import bad_request, not_found
from picloud.web.handlers import CAPABILITY, check_topic_target
from picloud.web.jsonio import get_bool, get_int, get_str, json_response, read_object, read_patch
from picloud.web.params import path_uuid
from picloud.web.routing import routes
from picloud.web.sql import fetch_all, fetch_one

SOURCES = ("kv", "docs", "files", "cron", "pubsub", "dead_letter")
MAX_ATTEMPTS = 100

TRIGGER_BODY = {
    "type": "object",
    "required": ["name", "source", "handler_id"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        "source": {"type": "string", "enum": list(SOURCES)},
        "filter": {
            "type": "object",
            "properties": {
                "match": {"type": "string", "description": "subject glob; * matches any run"},
                "types": {"type": "array", "items": {"type": "string"}},
            },
        },
        "handler_id": {"type": "string", "format": "uuid"},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS},
        "enabled": {"type": "boolean"},
    },
}
FIELDS = {"name", "source", "filter", "handler_id", "max_attempts", "enabled"}


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    filter_ = body.get("filter")
    if filter_ is not None and not isinstance(filter_, dict):
        raise bad_request('\'filter\' must be an object like {"match": "orders.*"}')
    handler = get_str(body, "handler_id", required=False)
    try:
        handler_id = uuid.UUID(handler) if handler is not None else None
    except ValueError as exc:
        raise bad_request("'handler_id' must be a handler id") from exc
    return {
        "name": get_str(body, "name", required=False),
        "filter": Jsonb(filter_) if filter_ is not None else None,
        "handler_id": handler_id,
        "max_attempts": get_int(body, "max_attempts", minimum=1, maximum=MAX_ATTEMPTS),
        "enabled": get_bool(body, "enabled"),
    }


@routes.post(
    "/api/v1/apps/{app_id}/triggers",
    "Create a trigger",
    "triggers",
    capability=CAPABILITY,
    request_body=TRIGGER_BODY,
    ok_status=201,
)
async def create_trigger(request: web.Request) -> web.Response:
    principal, app = await require_app(request, CAPABILITY)
    body = await read_object(request, FIELDS)
    source = get_str(body, "source")
    if source not in SOURCES:
        raise bad_request(f"'source' must be one of {', '.join(SOURCES)}")
    fields = _fields(body)
    if fields["name"] is None or fields["handler_id"] is None:
        raise bad_request("'name' and 'handler_id' are required")
    await check_topic_target(request, principal, app["id"], fields["handler_id"])
    row = await fetch_one(
        request, "create_trigger", {"app_id": app["id"], "source": source, **fields}
    )
    return json_response(row, status=201)


@routes.get("/api/v1/apps/{app_id}/triggers", "List triggers", "triggers", capability=CAPABILITY)
async def list_triggers(request: web.Request) -> web.Response:
    _, app = await require_app(request, CAPABILITY)
    return json_response(
        {"triggers": await fetch_all(request, "list_triggers", {"app_id": app["id"]})}
    )


@routes.get(
    "/api/v1/apps/{app_id}/triggers/{trigger_id}",
    "Get a trigger",
    "triggers",
    capability=CAPABILITY,
)
async def get_trigger(request: web.Request) -> web.Response:
    _, app = await require_app(request, CAPABILITY)
    params = {"app_id": app["id"], "id": path_uuid(request, "trigger_id")}
    row = await fetch_one(request, "get_trigger", params)
    if row is None:
        raise not_found("no such trigger")
    return json_response(row)


@routes.patch(
    "/api/v1/apps/{app_id}/triggers/{trigger_id}",
    "Change a trigger (name, filter, handler, max_attempts, enabled)",
    "triggers",
    capability=CAPABILITY,
    request_body={"type": "object", "properties": TRIGGER_BODY["properties"]},
)
async def update_trigger(request: web.Request) -> web.Response:
    principal, app = await require_app(request, CAPABILITY)
    params = {"app_id": app["id"], "id": path_uuid(request, "trigger_id")}
    body = await read_patch(request, FIELDS)
    if "source" in body:
        raise bad_request("a trigger's source cannot change; create another trigger")
    fields = _fields(body)
    await check_topic_target(request, principal, app["id"], fields["handler_id"], params["id"])
    row = await fetch_one(request, "update_trigger", {**params, **fields})
    if row is None:
        raise not_found("no such trigger")
    return json_response(row)


@routes.delete(
    "/api/v1/apps/{app_id}/triggers/{trigger_id}",
    "Delete a trigger (queued deliveries still run)",
    "triggers",
    capability=CAPABILITY,
    ok_status=204,
)
async def delete_trigger(request: web.Request) -> web.Response:
    _, app = await require_app(request, CAPABILITY)
    params = {"app_id": app["id"], "id": path_uuid(request, "trigger_id")}
    if await fetch_one(request, "delete_trigger", params) is None:
        raise not_found("no such trigger")
    return web.Response(status=204)
