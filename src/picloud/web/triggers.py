"""Triggers: run a handler when a source (GET /api/v1/trigger-sources) changes.

Each request is one statement: picloud.authorize and picloud.create/update/delete_trigger
(sql/45_handlers.sql). The sources, the filter's form and the limits are SQL's
(picloud.event_sources(), check_trigger_filter, the table's CHECKs).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from psycopg.types.json import Jsonb

from picloud.web.auth import credentials
from picloud.web.errors import bad_request, not_found
from picloud.web.handlers import CAPABILITY, path_row_id
from picloud.web.jsonio import get_bool, get_int, get_str, json_response, read_object, read_patch
from picloud.web.routing import routes
from picloud.web.sql import fetch_all, fetch_one

TRIGGER_PATH = "/api/v1/apps/{app_id}/triggers/{trigger_id}"
SOURCE = {"type": "string", "description": "one of GET /api/v1/trigger-sources"}
TRIGGER_BODY = {
    "type": "object",
    "required": ["name", "source", "handler_id"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        "source": SOURCE,
        "filter": {
            "type": "object",
            "properties": {
                "match": {"type": "string", "description": "subject glob; * matches any run"},
                "types": {"type": "array", "items": {"type": "string"}},
            },
        },
        "handler_id": {"type": "string", "format": "uuid"},
        "max_attempts": {
            "type": "integer",
            "description": "attempts before a dead letter (CHECK triggers_max_attempts_range)",
        },
        "enabled": {"type": "boolean"},
    },
}
FIELDS = {"name", "source", "filter", "handler_id", "max_attempts", "enabled"}


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    """The body's fields, shape-checked; SQL judges the values (the filter too)."""
    handler = get_str(body, "handler_id", required=False)
    try:
        handler_id = uuid.UUID(handler) if handler is not None else None
    except ValueError as exc:
        raise bad_request("'handler_id' must be a handler id") from exc
    filter_ = body.get("filter")
    return {
        "name": get_str(body, "name", required=False),
        "source": get_str(body, "source", required=False),
        "filter": Jsonb(filter_) if filter_ is not None else None,
        "handler_id": handler_id,
        "max_attempts": get_int(body, "max_attempts"),
        "enabled": get_bool(body, "enabled"),
    }


@routes.get("/api/v1/trigger-sources", "The sources a trigger can listen to", "triggers")
async def list_trigger_sources(request: web.Request) -> web.Response:
    row = await fetch_one(request, "api_list_trigger_sources", {})
    assert row is not None
    return json_response(row)


@routes.post(
    "/api/v1/apps/{app_id}/triggers",
    "Create a trigger",
    "triggers",
    capability=CAPABILITY,
    request_body=TRIGGER_BODY,
    ok_status=201,
)
async def create_trigger(request: web.Request) -> web.Response:
    body = await read_object(request, FIELDS)
    params = {**credentials(request), **_fields(body)}
    row = await fetch_one(request, "api_create_trigger", params)
    return json_response(row, status=201)


@routes.get("/api/v1/apps/{app_id}/triggers", "List triggers", "triggers", capability=CAPABILITY)
async def list_triggers(request: web.Request) -> web.Response:
    rows = await fetch_all(request, "api_list_triggers", credentials(request))
    return json_response({"triggers": rows})


@routes.get(TRIGGER_PATH, "Get a trigger", "triggers", capability=CAPABILITY)
async def get_trigger(request: web.Request) -> web.Response:
    params = {**credentials(request), "id": path_row_id(request, "trigger_id")}
    row = await fetch_one(request, "api_get_trigger", params)
    if row is None:
        raise not_found("no such trigger")
    return json_response(row)


@routes.patch(
    TRIGGER_PATH,
    "Change a trigger (name, filter, handler, max_attempts, enabled)",
    "triggers",
    capability=CAPABILITY,
    request_body={"type": "object", "properties": TRIGGER_BODY["properties"]},
)
async def update_trigger(request: web.Request) -> web.Response:
    body = await read_patch(request, FIELDS)
    params = {**credentials(request), "id": path_row_id(request, "trigger_id"), **_fields(body)}
    row = await fetch_one(request, "api_update_trigger", params)
    return json_response(row)


@routes.delete(
    TRIGGER_PATH,
    "Delete a trigger (queued deliveries still run)",
    "triggers",
    capability=CAPABILITY,
    ok_status=204,
)
async def delete_trigger(request: web.Request) -> web.Response:
    params = {**credentials(request), "id": path_row_id(request, "trigger_id")}
    await fetch_one(request, "api_delete_trigger", params)
    return web.Response(status=204)
