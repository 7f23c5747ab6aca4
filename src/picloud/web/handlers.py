"""Handlers: what triggers run — webhooks, SQL functions (instance admins only), or a
topic the event is published to in the changing transaction (live collections)."""

from __future__ import annotations

from typing import Any

import psycopg
from aiohttp import web

from picloud.web.auth import INSTANCE_ADMIN, Principal, require_app
from picloud.web.errors import ApiError, bad_request, forbidden, not_found
from picloud.web.jsonio import get_int, get_str, json_response, read_object, read_patch
from picloud.web.params import path_uuid
from picloud.web.routing import routes
from picloud.web.sql import fetch_all, fetch_one

CAPABILITY = "triggers:manage"
TIMEOUT_MS_MAX = 300000

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
        "timeout_ms": {"type": "integer", "minimum": 1, "maximum": TIMEOUT_MS_MAX},
        "function": {"type": "string", "description": "sql: schema.function(event jsonb)"},
        "topic": {
            "type": "string",
            "description": "topic: publish each event to this topic of the app, in the "
            "transaction of the change (needs topics:publish too)",
        },
    },
}
FIELDS = {"name", "kind", "url", "secret", "timeout_ms", "function", "topic"}
KINDS = ("webhook", "sql", "topic")
# What each kind takes besides name (and timeout_ms, which a topic handler ignores).
KIND_FIELDS = {"webhook": {"url", "secret"}, "sql": {"function"}, "topic": {"topic"}}


def _fields(body: dict[str, Any], kind: str) -> dict[str, Any]:
    fields = {
        "name": get_str(body, "name", required=False),
        "url": get_str(body, "url", required=False),
        "secret": get_str(body, "secret", required=False),
        "function": get_str(body, "function", required=False),
        "topic": get_str(body, "topic", required=False),
        "timeout_ms": get_int(body, "timeout_ms", minimum=1, maximum=TIMEOUT_MS_MAX),
    }
    foreign = sorted(
        f for f in set().union(*KIND_FIELDS.values()) - KIND_FIELDS[kind] if fields[f] is not None
    )
    if foreign:
        takes = ", ".join(repr(f) for f in sorted(KIND_FIELDS[kind]))
        raise bad_request(f"a {kind} handler takes {takes}, not {', '.join(map(repr, foreign))}")
    return fields


def _check_topic_publisher(principal: Principal, app_id: Any) -> None:
    # A topic handler publishes whatever its triggers' sources carry to a topic: only a key
    # that may publish there may point one at it.
    if not principal.allows("topics:publish", app_id):
        raise forbidden("a topic handler needs triggers:manage and topics:publish")


async def check_topic_target(
    request: web.Request,
    principal: Principal,
    app_id: Any,
    handler_id: Any,
    trigger_id: Any = None,
) -> None:
    """403 when a key without topics:publish creates or changes a trigger whose handler
    (the new one, or the trigger's current one) is a topic handler."""
    if principal.allows("topics:publish", app_id):
        return
    params = {"app_id": app_id, "handler_id": handler_id, "trigger_id": trigger_id}
    row = await fetch_one(request, "trigger_targets_topic", params)
    if row is not None and row["topic"]:
        _check_topic_publisher(principal, app_id)


@routes.post(
    "/api/v1/apps/{app_id}/handlers",
    "Register a handler (sql handlers need instance:admin)",
    "triggers",
    capability=CAPABILITY,
    request_body=HANDLER_BODY,
    ok_status=201,
)
async def create_handler(request: web.Request) -> web.Response:
    principal, app = await require_app(request, CAPABILITY)
    body = await read_object(request, FIELDS)
    kind = get_str(body, "kind")
    if kind not in KINDS:
        raise bad_request("'kind' must be 'webhook', 'sql' or 'topic'")
    fields = _fields(body, kind)
    if fields["name"] is None:
        raise bad_request("'name' is required")
    if kind == "webhook" and fields["url"] is None:
        raise bad_request("a webhook handler needs a 'url'")
    if kind == "sql":
        if not principal.allows(INSTANCE_ADMIN, None):
            raise forbidden("registering an sql handler needs instance:admin")
        if fields["function"] is None:
            raise bad_request("an sql handler needs a 'function' (schema.name)")
    if kind == "topic":
        _check_topic_publisher(principal, app["id"])
        if fields["topic"] is None:
            raise bad_request("a topic handler needs a 'topic'")
    row = await fetch_one(request, "create_handler", {"app_id": app["id"], "kind": kind, **fields})
    return json_response(row, status=201)


@routes.get("/api/v1/apps/{app_id}/handlers", "List handlers", "triggers", capability=CAPABILITY)
async def list_handlers(request: web.Request) -> web.Response:
    _, app = await require_app(request, CAPABILITY)
    return json_response(
        {"handlers": await fetch_all(request, "list_handlers", {"app_id": app["id"]})}
    )


@routes.get(
    "/api/v1/apps/{app_id}/handlers/{handler_id}",
    "Get a handler (never its secret)",
    "triggers",
    capability=CAPABILITY,
)
async def get_handler(request: web.Request) -> web.Response:
    _, app = await require_app(request, CAPABILITY)
    params = {"app_id": app["id"], "id": path_uuid(request, "handler_id")}
    row = await fetch_one(request, "get_handler", params)
    if row is None:
        raise not_found("no such handler")
    return json_response(row)


@routes.patch(
    "/api/v1/apps/{app_id}/handlers/{handler_id}",
    "Change a handler (url, secret, timeout_ms, name; function needs instance:admin)",
    "triggers",
    capability=CAPABILITY,
    request_body={"type": "object", "properties": HANDLER_BODY["properties"]},
)
async def update_handler(request: web.Request) -> web.Response:
    principal, app = await require_app(request, CAPABILITY)
    params = {"app_id": app["id"], "id": path_uuid(request, "handler_id")}
    current = await fetch_one(request, "get_handler", params)
    if current is None:
        raise not_found("no such handler")
    body = await read_patch(request, FIELDS)
    if "kind" in body and body["kind"] != current["kind"]:
        raise bad_request("a handler's kind cannot change; create another handler")
    fields = _fields(body, current["kind"])
    if current["kind"] == "sql" and not principal.allows(INSTANCE_ADMIN, None):
        raise forbidden("changing an sql handler needs instance:admin")
    if current["kind"] == "topic":
        _check_topic_publisher(principal, app["id"])
    row = await fetch_one(request, "update_handler", {**params, **fields})
    if row is None:
        raise not_found("no such handler")
    return json_response(row)


@routes.delete(
    "/api/v1/apps/{app_id}/handlers/{handler_id}",
    "Delete a handler no trigger uses",
    "triggers",
    capability=CAPABILITY,
    ok_status=204,
)
async def delete_handler(request: web.Request) -> web.Response:
    _, app = await require_app(request, CAPABILITY)
    params = {"app_id": app["id"], "id": path_uuid(request, "handler_id")}
    try:
        row = await fetch_one(request, "delete_handler", params)
    except psycopg.errors.ForeignKeyViolation as exc:
        raise ApiError(409, "conflict", "triggers still use this handler") from exc
    if row is None:
        raise not_found("no such handler")
    return web.Response(status=204)
