"""Cron jobs: ``/api/v1/apps/{app_id}/cron[/{name}]`` (capability triggers:manage).

A job is a five-field expression evaluated in a time zone; each due time fires a
``cron`` event (subject = job name, payload included) to the app's cron triggers.
An invalid expression or time zone is a 400 whose message names the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from psycopg.types.json import Jsonb

from picloud.cron.expressions import CronError, next_after, parse_expression, parse_timezone
from picloud.web.auth import require_app
from picloud.web.errors import ApiError, bad_request, not_found
from picloud.web.jsonio import get_bool, get_str, json_response, read_object, read_patch
from picloud.web.routing import routes
from picloud.web.source_common import path_param
from picloud.web.sql import fetch_all, fetch_one

CAPABILITY = "triggers:manage"
JOBS_PATH = "/api/v1/apps/{app_id}/cron"
JOB_PATH = JOBS_PATH + "/{name}"
FIELDS = {"name", "expression", "timezone", "payload", "enabled"}
JOB_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
    "expression": {"type": "string", "description": "five fields: m h dom mon dow"},
    "timezone": {"type": "string", "default": "UTC"},
    "payload": {"type": "object"},
    "enabled": {"type": "boolean", "default": True},
}
JOB_BODY = {"type": "object", "required": ["name", "expression"], "properties": JOB_PROPERTIES}
PATCH_BODY = {
    "type": "object",
    "properties": {k: v for k, v in JOB_PROPERTIES.items() if k != "name"},
}


def _settings(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Validated job settings: ``body`` over ``current``, with the next due time."""
    expression = get_str(body, "expression", required=False) or current.get("expression")
    timezone = get_str(body, "timezone", required=False)
    if timezone is None:
        timezone = current.get("timezone") or "UTC"
    payload = body.get("payload", current.get("payload", {}))
    enabled = get_bool(body, "enabled")
    if enabled is None:
        enabled = current.get("enabled", True)
    if expression is None:
        raise bad_request("'expression' is required")
    if not isinstance(payload, dict):
        raise bad_request("'payload' must be a JSON object")
    try:
        parse_timezone(timezone)
        expression = parse_expression(expression, timezone)
        next_run_at = next_after(expression, timezone, datetime.now(UTC))
    except CronError as exc:
        raise ApiError(400, "invalid_input", f"{exc.field!r}: {exc.message}") from exc
    return {
        "expression": expression,
        "timezone": timezone,
        "payload": Jsonb(payload),
        "enabled": enabled,
        "next_run_at": next_run_at,
    }


@routes.post(
    JOBS_PATH,
    "Create a cron job",
    "cron",
    capability=CAPABILITY,
    request_body=JOB_BODY,
    ok_status=201,
)
async def create_cron_job(request: web.Request) -> web.Response:
    _, app = await require_app(request, CAPABILITY)
    body = await read_object(request, FIELDS)
    name = get_str(body, "name")
    row = await fetch_one(
        request, "cron_create", {"app_id": app["id"], "name": name, **_settings(body, {})}
    )
    return json_response(row, status=201)


@routes.get(JOBS_PATH, "List cron jobs", "cron", capability=CAPABILITY)
async def list_cron_jobs(request: web.Request) -> web.Response:
    _, app = await require_app(request, CAPABILITY)
    return json_response(
        {"cron_jobs": await fetch_all(request, "cron_list", {"app_id": app["id"]})}
    )


async def _job(request: web.Request, app: dict[str, Any]) -> dict[str, Any]:
    key = {"app_id": app["id"], "name": path_param(request, "name", "cron job name")}
    row = await fetch_one(request, "cron_get", key)
    if row is None:
        raise not_found("no such cron job")
    return row


@routes.get(JOB_PATH, "Get a cron job", "cron", capability=CAPABILITY)
async def get_cron_job(request: web.Request) -> web.Response:
    _, app = await require_app(request, CAPABILITY)
    return json_response(await _job(request, app))


@routes.patch(
    JOB_PATH,
    "Change a cron job (any of expression, timezone, payload, enabled)",
    "cron",
    capability=CAPABILITY,
    request_body=PATCH_BODY,
)
async def update_cron_job(request: web.Request) -> web.Response:
    _, app = await require_app(request, CAPABILITY)
    body = await read_patch(request, FIELDS - {"name"})
    current = await _job(request, app)
    params = {"app_id": app["id"], "name": current["name"], **_settings(body, current)}
    row = await fetch_one(request, "cron_update", params)
    if row is None:
        raise not_found("no such cron job")
    return json_response(row)


@routes.delete(JOB_PATH, "Delete a cron job", "cron", capability=CAPABILITY, ok_status=204)
async def delete_cron_job(request: web.Request) -> web.Response:
    _, app = await require_app(request, CAPABILITY)
    key = {"app_id": app["id"], "name": path_param(request, "name", "cron job name")}
    if await fetch_one(request, "cron_delete", key) is None:
        raise not_found("no such cron job")
    return web.Response(status=204)
