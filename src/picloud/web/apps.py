"""Apps, their domains and their API keys (SPEC §6)."""

from __future__ import annotations

import idna
from aiohttp import web

from picloud.web.auth import APP_ADMIN, INSTANCE_ADMIN, require_app, require_instance_admin
from picloud.web.errors import bad_request, not_found
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
    await require_instance_admin(request)
    body = await read_object(request, {"slug", "name"})
    slug, name = get_str(body, "slug"), get_str(body, "name")
    row = await fetch_one(request, "create_app", {"slug": slug, "name": name})
    return json_response(row, status=201)


@routes.get("/api/v1/apps", "List apps", "apps", capability="instance:admin")
async def list_apps(request: web.Request) -> web.Response:
    await require_instance_admin(request)
    return json_response({"apps": await fetch_all(request, "list_apps", {})})


@routes.get("/api/v1/apps/{app_id}", "Get an app", "apps", capability=APP_ADMIN)
async def get_app(request: web.Request) -> web.Response:
    _, app = await require_app(request, APP_ADMIN)
    return json_response(app)


@routes.patch(
    "/api/v1/apps/{app_id}",
    "Rename an app",
    "apps",
    capability=APP_ADMIN,
    request_body={"type": "object", "properties": APP_BODY["properties"]},
)
async def update_app(request: web.Request) -> web.Response:
    _, app = await require_app(request, APP_ADMIN)
    body = await read_patch(request, {"slug", "name"})
    params = {
        "app_id": app["id"],
        "name": get_str(body, "name", required=False),
        "slug": get_str(body, "slug", required=False),
    }
    row = await fetch_one(request, "update_app", params)
    if row is None:
        raise not_found("no such app")
    return json_response(row)


@routes.delete(
    "/api/v1/apps/{app_id}",
    "Delete an app and all it owns",
    "apps",
    capability="instance:admin",
    ok_status=204,
)
async def delete_app(request: web.Request) -> web.Response:
    await require_instance_admin(request)
    row = await fetch_one(request, "delete_app", {"app_id": path_uuid(request, "app_id")})
    if row is None:
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
    principal, app = await require_app(request, APP_ADMIN)
    body = await read_object(request, {"host"})
    params = {
        "app_id": app["id"],
        "host": ascii_host(get_str(body, "host") or ""),
        "instance_admin": principal.allows(INSTANCE_ADMIN, None),
    }
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
    _, app = await require_app(request, APP_ADMIN)
    return json_response(
        {"domains": await fetch_all(request, "list_domains", {"app_id": app["id"]})}
    )


@routes.delete(
    "/api/v1/apps/{app_id}/domains/{host}",
    "Detach a host name",
    "apps",
    capability=APP_ADMIN,
    ok_status=204,
)
async def delete_domain(request: web.Request) -> web.Response:
    _, app = await require_app(request, APP_ADMIN)
    host = ascii_host(request.match_info["host"])
    if await fetch_one(request, "delete_domain", {"app_id": app["id"], "host": host}) is None:
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
    _, app = await require_app(request, APP_ADMIN)
    body = await read_object(request, {"name", "capabilities"})
    name = get_str(body, "name")
    capabilities = get_str_list(body, "capabilities")
    row = await fetch_one(
        request,
        "create_api_key",
        {"app_id": app["id"], "name": name, "capabilities": capabilities, "expires_at": None},
    )
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
    _, app = await require_app(request, APP_ADMIN)
    return json_response({"keys": await fetch_all(request, "list_api_keys", {"app_id": app["id"]})})


@routes.delete(
    "/api/v1/apps/{app_id}/keys/{key_id}", "Revoke an API key", "apps", capability=APP_ADMIN
)
async def revoke_key(request: web.Request) -> web.Response:
    _, app = await require_app(request, APP_ADMIN)
    params = {"app_id": app["id"], "key_id": path_uuid(request, "key_id")}
    row = await fetch_one(request, "revoke_api_key", params)
    if row is None:
        raise not_found("no such key")
    return json_response(row)
