"""Handlers: what triggers run — webhooks, SQL functions (instance admins only), or a
topic the event is published to in the changing transaction (live collections).

Each request is one statement: picloud.authorize and picloud.create/update/delete_handler
(sql/45_handlers.sql), which hold every rule — the fields of each kind and the limits (the
table's CHECKs), and who may manage which kind — so psql and HTTP obey the same ones.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from aiohttp import web

from picloud.web.auth import credentials
from picloud.web.errors import ApiError, not_found
from picloud.web.jsonio import get_int, get_str, json_response, read_object, read_patch
from picloud.web.routing import routes
from picloud.web.sql import fetch_all, fetch_one

CAPABILITY = "triggers:manage"
HANDLER_PATH = "/api/v1/apps/{app_id}/handlers/{handler_id}"

HANDLER_BODY = {
    "type": "object",
    "required": ["name", "kind"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        "kind": {"type": "string", "enum": ["webhook", "sql", "topic"]},
        "url": {"type": "string", "description": "webhook: http(s) URL to POST to"},
        "secret": {
            "type": "string",
            "description": "webhook: signing secret (generated if absent)",
        },
        "timeout_ms": {
            "type": "integer",
            "description": "milliseconds (CHECK handlers_timeout_range)",
        },
        "function": {"type": "string", "description": "sql: schema.function(event jsonb)"},
        "topic": {
            "type": "string",
            "description": "topic: publish each event to this topic of the app, in the "
            "transaction of the change (needs topics:publish too)",
        },
    },
}
FIELDS = {"name", "kind", "url", "secret", "timeout_ms", "function", "topic"}

# A path id that is not a uuid names no row: the statement answers it (after the key).
_NO_ID = uuid.UUID(int=0)


def path_row_id(request: web.Request, name: str) -> uuid.UUID:
    """The uuid in the path, or one that names nothing (404 from the statement, which
    still checks the key first)."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        return _NO_ID


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    """The body's fields, shape-checked (strings, an integer); SQL judges the values."""
    return {
        "name": get_str(body, "name", required=False),
        "kind": get_str(body, "kind", required=False),
        "url": get_str(body, "url", required=False),
        "secret": get_str(body, "secret", required=False),
        "function": get_str(body, "function", required=False),
        "topic": get_str(body, "topic", required=False),
        "timeout_ms": get_int(body, "timeout_ms"),
    }


@routes.post(
    "/api/v1/apps/{app_id}/handlers",
    "Register a handler (sql handlers need instance:admin)",
    "triggers",
    capability=CAPABILITY,
    request_body=HANDLER_BODY,
    ok_status=201,
)
async def create_handler(request: web.Request) -> web.Response:
    body = await read_object(request, FIELDS)
    params = {**credentials(request), **_fields(body)}  # name, kind NULL: 23502 -> 400
    row = await fetch_one(request, "api_create_handler", params)
    return json_response(row, status=201)


@routes.get("/api/v1/apps/{app_id}/handlers", "List handlers", "triggers", capability=CAPABILITY)
async def list_handlers(request: web.Request) -> web.Response:
    rows = await fetch_all(request, "api_list_handlers", credentials(request))
    return json_response({"handlers": rows})


@routes.get(HANDLER_PATH, "Get a handler (never its secret)", "triggers", capability=CAPABILITY)
async def get_handler(request: web.Request) -> web.Response:
    params = {**credentials(request), "id": path_row_id(request, "handler_id")}
    row = await fetch_one(request, "api_get_handler", params)
    if row is None:
        raise not_found("no such handler")
    return json_response(row)


@routes.patch(
    HANDLER_PATH,
    "Change a handler (url, secret, timeout_ms, name; function needs instance:admin)",
    "triggers",
    capability=CAPABILITY,
    request_body={"type": "object", "properties": HANDLER_BODY["properties"]},
)
async def update_handler(request: web.Request) -> web.Response:
    body = await read_patch(request, FIELDS)
    params = {**credentials(request), "id": path_row_id(request, "handler_id"), **_fields(body)}
    row = await fetch_one(request, "api_update_handler", params)
    return json_response(row)


@routes.delete(
    HANDLER_PATH,
    "Delete a handler no trigger uses",
    "triggers",
    capability=CAPABILITY,
    ok_status=204,
)
async def delete_handler(request: web.Request) -> web.Response:
    params = {**credentials(request), "id": path_row_id(request, "handler_id")}
    try:
        await fetch_one(request, "api_delete_handler", params)
    except psycopg.errors.ForeignKeyViolation as exc:
        raise ApiError(409, "conflict", "triggers still use this handler") from exc
    return web.Response(status=204)
