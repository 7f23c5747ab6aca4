"""Cron jobs: ``/api/v1/apps/{app_id}/cron[/{name}]`` (capability triggers:manage).

A job is a five-field expression evaluated in a time zone; each due time fires a
``cron`` event (subject = job name, payload included) to the app's cron triggers.
An invalid expression or time zone is a 400 whose message names the field: the grammar
lives in picloud.cron.expressions (shared with the ticker); every other rule, and the
write, in picloud.*_cron_job (sql/53_cron.sql), one statement per request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from psycopg.types.json import Jsonb

from picloud.cron.expressions import CronError, next_after, parse_expression, parse_timezone
from picloud.web.auth import credentials
from picloud.web.errors import ApiError, not_found
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


def _schedule(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The job's settings as given (None: not given), the expression normalised and, when
    both expression and time zone are known here, the next due time (else None: the
    ticker schedules it). A given expression is checked against the given zone, or UTC."""
    expression = get_str(body, "expression", required=creating)
    timezone = get_str(body, "timezone", required=False)
    payload = body.get("payload")
    next_run_at = None
    try:
        if timezone is not None:
            parse_timezone(timezone)
        if expression is not None:
            zone = timezone or "UTC"
            expression = parse_expression(expression, zone)
            if creating or timezone is not None:
                next_run_at = next_after(expression, zone, datetime.now(UTC))
    except CronError as exc:
        raise ApiError(400, "invalid_input", f"{exc.field!r}: {exc.message}") from exc
    return {
        "expression": expression,
        "timezone": timezone,
        "payload": Jsonb(payload) if payload is not None else None,
        "enabled": get_bool(body, "enabled"),
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
    body = await read_object(request, FIELDS)
    params = {
        **credentials(request),
        "name": get_str(body, "name"),
        **_schedule(body, creating=True),
    }
    row = await fetch_one(request, "api_create_cron_job", params)
    return json_response(row, status=201)


@routes.get(JOBS_PATH, "List cron jobs", "cron", capability=CAPABILITY)
async def list_cron_jobs(request: web.Request) -> web.Response:
    rows = await fetch_all(request, "api_list_cron_jobs", credentials(request))
    return json_response({"cron_jobs": rows})


def _name(request: web.Request) -> dict[str, Any]:
    return {**credentials(request), "name": path_param(request, "name", "cron job name")}


@routes.get(JOB_PATH, "Get a cron job", "cron", capability=CAPABILITY)
async def get_cron_job(request: web.Request) -> web.Response:
    row = await fetch_one(request, "api_get_cron_job", _name(request))
    if row is None:
        raise not_found("no such cron job")
    return json_response(row)


@routes.patch(
    JOB_PATH,
    "Change a cron job (any of expression, timezone, payload, enabled)",
    "cron",
    capability=CAPABILITY,
    request_body=PATCH_BODY,
)
async def update_cron_job(request: web.Request) -> web.Response:
    body = await read_patch(request, FIELDS - {"name"})
    params = {**_name(request), **_schedule(body, creating=False)}
    row = await fetch_one(request, "api_update_cron_job", params)
    return json_response(row)


@routes.delete(JOB_PATH, "Delete a cron job", "cron", capability=CAPABILITY, ok_status=204)
async def delete_cron_job(request: web.Request) -> web.Response:
    await fetch_one(request, "api_delete_cron_job", _name(request))
    return web.Response(status=204)
