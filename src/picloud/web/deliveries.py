"""Deliveries (the outbox, with each attempt) and dead letters (list, retry, discard).

Each request is one statement: picloud.authorize and the operation (picloud.list_deliveries,
retry_dead_letter, retry_dead_letters, discard_dead_letter, ...), which check the filters
(known statuses and sources) themselves.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
from aiohttp import web

from picloud.redrive import ALREADY_RETRIED, already_retried
from picloud.web.auth import credentials
from picloud.web.errors import bad_request, not_found
from picloud.web.jsonio import get_bool, get_int, get_str, json_response, read_object
from picloud.web.params import path_id, query_int
from picloud.web.routing import routes
from picloud.web.sql import fetch_all, fetch_one
from picloud.web.triggers import SOURCE

READ = "deliveries:read"
MANAGE = "dead_letters:manage"
# One bulk-retry request retries at most this many (a client repeats while some remain).
BULK_LIMIT_DEFAULT = 1000
BULK_LIMIT_MAX = 10000
BULK_FIELDS = {"source", "since", "until", "handler_id", "limit", "dry_run"}
BULK_BODY = {
    "type": "object",
    "properties": {
        "source": SOURCE,
        "since": {"type": "string", "format": "date-time", "description": "created at or after"},
        "until": {"type": "string", "format": "date-time", "description": "created before"},
        "handler_id": {"type": "string", "format": "uuid"},
        "limit": {"type": "integer", "minimum": 1, "maximum": BULK_LIMIT_MAX},
        "dry_run": {"type": "boolean", "description": "only count: {matching, until}"},
    },
}
DEAD_LETTER_PATH = "/api/v1/apps/{app_id}/dead-letters/{dead_letter_id}"


def _page(request: web.Request, *filters: str) -> dict[str, Any]:
    """A list's filters as given (SQL refuses unknown values) and its page size."""
    return {
        **credentials(request),
        **{name: request.query.get(name) or None for name in filters},
        "limit": query_int(request, "limit", 100, minimum=1, maximum=1000),
    }


def _timestamp(body: dict[str, Any], name: str) -> datetime | None:
    raw = get_str(body, name, required=False)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise bad_request(f"{name!r} must be an ISO 8601 date-time") from exc
    return value  # without a zone: the database session's, as a timestamptz input


def _handler_id(body: dict[str, Any]) -> uuid.UUID | None:
    raw = get_str(body, "handler_id", required=False)
    try:
        return uuid.UUID(raw) if raw is not None else None
    except ValueError as exc:
        raise bad_request("'handler_id' must be a handler id") from exc


@routes.get(
    "/api/v1/apps/{app_id}/deliveries",
    "List deliveries, newest first",
    "deliveries",
    capability=READ,
    query=("status", "source", "limit"),
)
async def list_deliveries(request: web.Request) -> web.Response:
    rows = await fetch_all(request, "api_list_deliveries", _page(request, "status", "source"))
    return json_response({"deliveries": rows})


@routes.get(
    "/api/v1/apps/{app_id}/deliveries/{delivery_id}",
    "Get a delivery with its attempts",
    "deliveries",
    capability=READ,
)
async def get_delivery(request: web.Request) -> web.Response:
    params = {**credentials(request), "id": path_id(request, "delivery_id", "delivery")}
    row = await fetch_one(request, "api_get_delivery", params)
    if row is None:
        raise not_found("no such delivery")
    return json_response(row)


@routes.get(
    "/api/v1/apps/{app_id}/dead-letters",
    "List dead letters, newest first",
    "deliveries",
    capability=MANAGE,
    query=("source", "limit"),
)
async def list_dead_letters(request: web.Request) -> web.Response:
    rows = await fetch_all(request, "api_list_dead_letters", _page(request, "source"))
    return json_response({"dead_letters": rows})


@routes.get(DEAD_LETTER_PATH, "Get a dead letter", "deliveries", capability=MANAGE)
async def get_dead_letter(request: web.Request) -> web.Response:
    params = {**credentials(request), "id": path_id(request, "dead_letter_id", "dead letter")}
    row = await fetch_one(request, "api_get_dead_letter", params)
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
    body = await read_object(request, BULK_FIELDS) if request.can_read_body else {}
    params = {
        **credentials(request),
        "source": get_str(body, "source", required=False),
        "since": _timestamp(body, "since"),
        "until": _timestamp(body, "until"),
        "handler_id": _handler_id(body),
        "limit": get_int(body, "limit", minimum=1, maximum=BULK_LIMIT_MAX) or BULK_LIMIT_DEFAULT,
    }
    if get_bool(body, "dry_run"):
        row = await fetch_one(request, "api_count_dead_letters_to_retry", params)
        assert row is not None
        return json_response(row)
    row = await fetch_one(request, "api_retry_dead_letters", params)
    assert row is not None
    retried = row["retried"]
    return json_response({"retried": retried, "remaining": max(row["matching"] - retried, 0)})


@routes.post(
    DEAD_LETTER_PATH + "/retry",
    "Re-enqueue a dead letter as a fresh delivery (once; ?force=true to retry it again)",
    "deliveries",
    capability=MANAGE,
    ok_status=201,
    query=("force",),
)
async def retry_dead_letter(request: web.Request) -> web.Response:
    force = request.query.get("force", "false")
    if force not in ("true", "false"):
        raise bad_request("query parameter 'force' must be true or false")
    params = {
        **credentials(request),
        "id": path_id(request, "dead_letter_id", "dead letter"),
        "force": force == "true",
    }
    try:
        row = await fetch_one(request, "api_retry_dead_letter", params)
    except psycopg.Error as exc:
        if exc.sqlstate != ALREADY_RETRIED:
            raise
        return json_response({"error": already_retried(exc)}, status=409)
    assert row is not None
    return json_response({"delivery_id": row["delivery_id"]}, status=201)


@routes.delete(
    DEAD_LETTER_PATH, "Discard a dead letter", "deliveries", capability=MANAGE, ok_status=204
)
async def discard_dead_letter(request: web.Request) -> web.Response:
    params = {**credentials(request), "id": path_id(request, "dead_letter_id", "dead letter")}
    await fetch_one(request, "api_discard_dead_letter", params)
    return web.Response(status=204)
