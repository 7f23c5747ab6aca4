"""Apps, their domains and their API keys (SPEC §6).

Each handler parses the request and runs one statement: picloud.authorize joined to the
picloud.* function that acts (queries/apps.sql, queries/keys.sql).
"""

from __future__ import annotations

import uuid

import idna
from aiohttp import web

from picloud.web.auth import APP_ADMIN, credentials
from picloud.web.errors import ApiError, bad_request, not_found
from picloud.web.jsonio import (
    get_str,
    get_str_list,
    json_response,
    read_object,
    read_patch,
)
from picloud.web.params import path_uuid
from picloud.web.routing import routes
from picloud.web.sql import fetch_all, fetch_one

NO_KEY = uuid.UUID(int=0)

APP_BODY = {
    "type": "object",
    "required": ["slug", "name"],
    "properties": {
        "slug": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"},
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
    },
}


@routes.post(
    "/api/v1/apps",
    "Create an app",
    "apps",
    capability="instance:admin",
    request_body=APP_BODY,
    ok_status=201,
)
async def create_app(request: web.Request) -> web.Response:
    body = await read_object(request, {"slug", "name"})
    params = {**credentials(request), "slug": get_str(body, "slug"), "name": get_str(body, "name")}
    row = await fetch_one(request, "create_app_as", params)
    return json_response(row, status=201)


@routes.get("/api/v1/apps", "List apps", "apps", capability="instance:admin")
async def list_apps(request: web.Request) -> web.Response:
    return json_response({"apps": await fetch_all(request, "list_apps_as", credentials(request))})


@routes.get("/api/v1/apps/{app_id}", "Get an app", "apps", capability=APP_ADMIN)
async def get_app(request: web.Request) -> web.Response:
    row = await fetch_one(request, "get_app_as", credentials(request))
    assert row is not None  # picloud.authorize answered 404 for an unknown app
    return json_response(row)


@routes.patch(
    "/api/v1/apps/{app_id}",
    "Rename an app",
    "apps",
    capability=APP_ADMIN,
    request_body={"type": "object", "properties": APP_BODY["properties"]},
)
async def update_app(request: web.Request) -> web.Response:
    body = await read_patch(request, {"slug", "name"})
    params = {
        **credentials(request),
        "name": get_str(body, "name", required=False),
        "slug": get_str(body, "slug", required=False),
    }
    row = await fetch_one(request, "update_app_as", params)
    assert row is not None  # picloud.authorize answered 404 for an unknown app
    return json_response(row)


@routes.delete(
    "/api/v1/apps/{app_id}",
    "Delete an app and all it owns",
    "apps",
    capability="instance:admin",
    ok_status=204,
)
async def delete_app(request: web.Request) -> web.Response:
    row = await fetch_one(request, "delete_app_as", credentials(request))
    if row is None:  # deleted by a concurrent request since authorize saw it
        raise not_found("no such app")
    return web.Response(status=204)


@routes.post(
    "/api/v1/apps/{app_id}/domains",
    "Attach a host name",
    "apps",
    capability=APP_ADMIN,
    request_body={
        "type": "object",
        "required": ["host"],
        "properties": {"host": {"type": "string"}},
    },
    ok_status=201,
)
async def add_domain(request: web.Request) -> web.Response:
    body = await read_object(request, {"host"})
    params = {**credentials(request), "host": ascii_host(get_str(body, "host") or "")}
    return json_response(await fetch_one(request, "add_domain_as", params), status=201)


def ascii_host(host: str) -> str:
    """An internationalised name in its IDNA (``xn--``) form; picloud.add_domain does the
    rest of the normalisation (case, trailing dot, port) and every check."""
    if host.isascii():
        return host
    name, colon, port = host.strip().rpartition(":")
    if not (colon and port.isascii() and port.isdigit()):
        name = host.strip()
    try:
        return idna.encode(name.rstrip("."), uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise bad_request(f"'host' is not a valid internationalised name: {exc}") from exc


@routes.get("/api/v1/apps/{app_id}/domains", "List host names", "apps", capability=APP_ADMIN)
async def list_domains(request: web.Request) -> web.Response:
    rows = await fetch_all(request, "list_domains_as", credentials(request))
    return json_response({"domains": rows})


@routes.delete(
    "/api/v1/apps/{app_id}/domains/{host}",
    "Detach a host name",
    "apps",
    capability=APP_ADMIN,
    ok_status=204,
)
async def delete_domain(request: web.Request) -> web.Response:
    params = {**credentials(request), "host": ascii_host(request.match_info["host"])}
    if await fetch_one(request, "remove_domain_as", params) is None:
        raise not_found("no such domain")
    return web.Response(status=204)


@routes.post(
    "/api/v1/apps/{app_id}/keys",
    "Create an API key (the key is shown only here)",
    "apps",
    capability=APP_ADMIN,
    ok_status=201,
    request_body={
        "type": "object",
        "required": ["name", "capabilities"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "capabilities": {"type": "array", "items": {"type": "string"}},
        },
    },
)
async def create_key(request: web.Request) -> web.Response:
    body = await read_object(request, {"name", "capabilities"})
    name = get_str(body, "name")
    capabilities = get_str_list(body, "capabilities")
    params = {**credentials(request), "name": name, "capabilities": capabilities}
    row = await fetch_one(request, "create_api_key_as", params)
    assert row is not None
    return json_response(
        {
            "id": row["id"],
            "key": row["key"],
            "name": name,
            "key_prefix": row["key_prefix"],
            "capabilities": sorted(set(capabilities)),
            "created_at": row["created_at"],
        },
        status=201,
    )


@routes.get(
    "/api/v1/apps/{app_id}/keys",
    "List API keys (never their secrets)",
    "apps",
    capability=APP_ADMIN,
)
async def list_keys(request: web.Request) -> web.Response:
    rows = await fetch_all(request, "list_api_keys_as", credentials(request))
    return json_response({"keys": rows})


@routes.delete(
    "/api/v1/apps/{app_id}/keys/{key_id}", "Revoke an API key", "apps", capability=APP_ADMIN
)
async def revoke_key(request: web.Request) -> web.Response:
    try:
        key_id = path_uuid(request, "key_id")
    except ApiError:
        key_id = NO_KEY  # names no key: SQL answers 404, after the key check (401)
    params = {**credentials(request), "key_id": key_id}
    row = await fetch_one(request, "revoke_api_key_as", params)
    if row is None:
        raise not_found("no such key")
    return json_response(row)
