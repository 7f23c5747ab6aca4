"""Deliveries (the outbox, with each attempt) and dead letters (list, retry, discard)."""

from __future__ import annotations

import psycopg
from aiohttp import web

from picloud.redrive import ALREADY_RETRIED, already_retried
from picloud.web.auth import require_app
from picloud.web.errors import bad_request, not_found
from picloud.web.jsonio import get_bool, get_int, get_str, json_response, read_object
from picloud.web.params import path_id, query_int
from picloud.web.routing import routes
from picloud.web.sql import fetch_all, fetch_one
from picloud.web.triggers import SOURCES

READ = "deliveries:read"
MANAGE = "dead_letters:manage"
STATUSES = ("pending", "running", "done", "dead")
# One bulk-retry request retries at most this many (a client repeats while some remain).
BULK_LIMIT_DEFAULT = 1000
BULK_LIMIT_MAX = 10000
BULK_FIELDS = {"source", "since", "until", "handler_id", "limit", "dry_run"}
BULK_BODY = {
    "type": "object",
    "properties": {
        "source": {"type": "string", "enum": list(SOURCES)},
        "since": {"type": "string", "format": "date-time", "description": "created at or after"},
        "until": {"type": "string", "format": "date-time", "description": "created before"},
        "handler_id": {"type": "string", "format": "uuid"},
        "limit": {"type": "integer", "minimum": 1, "maximum": BULK_LIMIT_MAX},
        "dry_run": {"type": "boolean", "description": "only count: {matching, until}"},
    },
}


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name) or None
    if value is not None and value not in allowed:
        raise bad_request(f"query parameter {name!r} must be one of {', '.join(allowed)}")
    return value


@routes.get(
    "/api/v1/apps/{app_id}/deliveries",
    "List deliveries, newest first",
    "deliveries",
    capability=READ,
    query=("status", "source", "limit"),
)
async def list_deliveries(request: web.Request) -> web.Response:
    _, app = await require_app(request, READ)
    params = {
        "app_id": app["id"],
        "status": _choice(request, "status", STATUSES),
        "source": _choice(request, "source", SOURCES),
        "limit": query_int(request, "limit", 100, minimum=1, maximum=1000),
    }
    return json_response({"deliveries": await fetch_all(request, "list_deliveries", params)})


@routes.get(
    "/api/v1/apps/{app_id}/deliveries/{delivery_id}",
    "Get a delivery with its attempts",
    "deliveries",
    capability=READ,
)
async def get_delivery(request: web.Request) -> web.Response:
    _, app = await require_app(request, READ)
    params = {"app_id": app["id"], "id": path_id(request, "delivery_id", "delivery")}
    row = await fetch_one(request, "get_delivery", params)
    if row is None:
        raise not_found("no such delivery")
    row["attempts_made"] = row.pop("attempts")
    row["attempts"] = await fetch_all(request, "list_delivery_attempts", params)
    return json_response(row)


@routes.get(
    "/api/v1/apps/{app_id}/dead-letters",
    "List dead letters, newest first",
    "deliveries",
    capability=MANAGE,
    query=("source", "limit"),
)
async def list_dead_letters(request: web.Request) -> web.Response:
    _, app = await require_app(request, MANAGE)
    params = {
        "app_id": app["id"],
        "source": _choice(request, "source", SOURCES),
        "limit": query_int(request, "limit", 100, minimum=1, maximum=1000),
    }
    return json_response({"dead_letters": await fetch_all(request, "list_dead_letters", params)})


@routes.get(
    "/api/v1/apps/{app_id}/dead-letters/{dead_letter_id}",
    "Get a dead letter",
    "deliveries",
    capability=MANAGE,
)
async def get_dead_letter(request: web.Request) -> web.Response:
    _, app = await require_app(request, MANAGE)
    params = {"app_id": app["id"], "id": path_id(request, "dead_letter_id", "dead letter")}
    row = await fetch_one(request, "get_dead_letter", params)
    if row is None:
        raise not_found("no such dead letter")
    return json_response(row)


@routes.post(
    "/api/v1/apps/{app_id}/dead-letters/retry",
    "Retry the dead letters that match a filter (not retried yet), in batches",
    "deliveries",
    capability=MANAGE,
    request_body=BULK_BODY,
)
async def retry_dead_letters(request: web.Request) -> web.Response:
    _, app = await require_app(request, MANAGE)
    body = await read_object(request, BULK_FIELDS) if request.can_read_body else {}
    source = get_str(body, "source", required=False)
    if source is not None and source not in SOURCES:
        raise bad_request(f"'source' must be one of {', '.join(SOURCES)}")
    params = {
        "app_id": app["id"],
        "source": source,
        "since": get_str(body, "since", required=False),
        "until": get_str(body, "until", required=False),
        "handler_id": get_str(body, "handler_id", required=False),
        "limit": get_int(body, "limit", minimum=1, maximum=BULK_LIMIT_MAX) or BULK_LIMIT_DEFAULT,
    }
    if get_bool(body, "dry_run"):
        row = await fetch_one(request, "count_dead_letters_to_retry", params)
        assert row is not None
        return json_response(row)
    row = await fetch_one(request, "retry_dead_letters", params)
    assert row is not None
    retried = row["retried"]
    return json_response({"retried": retried, "remaining": max(row["matching"] - retried, 0)})


@routes.post(
    "/api/v1/apps/{app_id}/dead-letters/{dead_letter_id}/retry",
    "Re-enqueue a dead letter as a fresh delivery (once; ?force=true to retry it again)",
    "deliveries",
    capability=MANAGE,
    ok_status=201,
    query=("force",),
)
async def retry_dead_letter(request: web.Request) -> web.Response:
    _, app = await require_app(request, MANAGE)
    force = request.query.get("force", "false")
    if force not in ("true", "false"):
        raise bad_request("query parameter 'force' must be true or false")
    params = {
        "app_id": app["id"],
        "id": path_id(request, "dead_letter_id", "dead letter"),
        "force": force == "true",
    }
    try:
        row = await fetch_one(request, "retry_dead_letter", params)
    except psycopg.Error as exc:
        if exc.sqlstate != ALREADY_RETRIED:
            raise
        refusal = already_retried(exc)
        return json_response({"error": refusal}, status=409)
    if row is None:
        raise not_found("no such dead letter")
    return json_response({"delivery_id": row["delivery_id"]}, status=201)


@routes.delete(
    "/api/v1/apps/{app_id}/dead-letters/{dead_letter_id}",
    "Discard a dead letter",
    "deliveries",
    capability=MANAGE,
    ok_status=204,
)
async def discard_dead_letter(request: web.Request) -> web.Response:
    _, app = await require_app(request, MANAGE)
    params = {"app_id": app["id"], "id": path_id(request, "dead_letter_id", "dead letter")}
    if await fetch_one(request, "discard_dead_letter", params) is None:
        raise not_found("no such dead letter")
    return web.Response(status=204)
