"""Key-value entries: ``/api/v1/apps/{app_id}/kv[/{key}]`` (SPEC §6, kv:read / kv:write).

PUT's body is the JSON value itself. Set and delete fan out to kv triggers through the
row trigger on picloud.kv, so the HTTP layer only validates and calls SQL.
"""

from __future__ import annotations

from aiohttp import web
from psycopg.types.json import Jsonb

from picloud.web.auth import credentials
from picloud.web.errors import not_found
from picloud.web.jsonio import json_response, read_json
from picloud.web.routing import routes
from picloud.web.source_common import page_of, path_param
from picloud.web.sql import fetch_all, fetch_one

ENTRY_PATH = "/api/v1/apps/{app_id}/kv/{key:.+}"


@routes.get(
    "/api/v1/apps/{app_id}/kv",
    "List kv entries in key order",
    "kv",
    capability="kv:read",
    query=("prefix", "limit", "cursor"),
)
async def list_kv(request: web.Request) -> web.Response:
    page = page_of(request)
    rows = await fetch_all(request, "kv_list", {**credentials(request), **page.params()})
    entries, next_cursor = page.shape(rows, "key")
    return json_response({"entries": entries, "next_cursor": next_cursor})


@routes.get(ENTRY_PATH, "Get a kv entry", "kv", capability="kv:read")
async def get_kv(request: web.Request) -> web.Response:
    key = path_param(request, "key", "key")
    row = await fetch_one(request, "kv_get", {**credentials(request), "key": key})
    if row is None:
        raise not_found("no such key")
    return json_response(row)


@routes.put(
    ENTRY_PATH,
    "Set a kv entry (the body is the JSON value); 201 when the key is new",
    "kv",
    capability="kv:write",
    request_body={},
    also_ok=(201,),
)
async def put_kv(request: web.Request) -> web.Response:
    value = await read_json(request)
    key = path_param(request, "key", "key")
    params = {**credentials(request), "key": key, "value": Jsonb(value)}
    row = await fetch_one(request, "kv_set", params)
    assert row is not None
    created = row.pop("created")
    return json_response(row, status=201 if created else 200)


@routes.delete(ENTRY_PATH, "Delete a kv entry", "kv", capability="kv:write", ok_status=204)
async def delete_kv(request: web.Request) -> web.Response:
    key = path_param(request, "key", "key")
    row = await fetch_one(request, "kv_delete", {**credentials(request), "key": key})
    if row is None:
        raise not_found("no such key")
    return web.Response(status=204)
