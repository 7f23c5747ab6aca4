"""Document collections: ``/api/v1/apps/{app_id}/collections/{collection}/docs[/{id}]``.

Documents are JSON objects with a version that grows by one on every write. ``ETag``
carries the version; ``If-Match: "<version>"`` on PUT and DELETE makes the write
conditional (409 version_conflict when the document has moved on). Capabilities
docs:read / docs:write. Changes fan out through the row trigger on picloud.docs. Each
request is one statement (picloud.authorize and the picloud.doc_* function); the
collection name, document id and body are checked by SQL.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from psycopg.types.json import Jsonb

from picloud.web.auth import credentials
from picloud.web.errors import not_found
from picloud.web.jsonio import json_response, read_json
from picloud.web.params import if_match_version
from picloud.web.routing import routes
from picloud.web.source_common import page_of, path_param
from picloud.web.sql import fetch_all, fetch_one

COLLECTION_PATH = "/api/v1/apps/{app_id}/collections/{collection}/docs"
DOC_PATH = COLLECTION_PATH + "/{id}"
DOC_BODY = {"type": "object", "description": "the document: any JSON object"}


def doc_response(row: dict[str, Any], status: int = 200) -> web.Response:
    row.pop("created", None)
    return json_response(row, status=status, headers={"ETag": f'"{row["version"]}"'})


def _ref(request: web.Request, **more: Any) -> dict[str, Any]:
    return {
        **credentials(request),
        "collection": path_param(request, "collection", "collection"),
        "id": path_param(request, "id", "document id") if "id" in request.match_info else None,
        **more,
    }


@routes.get(
    COLLECTION_PATH,
    "List a collection's documents in id order",
    "docs",
    capability="docs:read",
    query=("limit", "cursor"),
)
async def list_docs(request: web.Request) -> web.Response:
    page = page_of(request)
    rows = await fetch_all(request, "api_list_docs", _ref(request, **page.params()))
    docs, next_cursor = page.shape(rows, "id")
    return json_response({"docs": docs, "next_cursor": next_cursor})


@routes.post(
    COLLECTION_PATH,
    "Create a document with a generated id",
    "docs",
    capability="docs:write",
    request_body=DOC_BODY,
    ok_status=201,
)
async def create_doc(request: web.Request) -> web.Response:
    data = await read_json(request)  # not an object: 22023 from picloud.check_doc_data
    row = await fetch_one(request, "api_create_doc", _ref(request, data=Jsonb(data)))
    assert row is not None
    return doc_response(row, status=201)


@routes.get(DOC_PATH, "Get a document (ETag: its version)", "docs", capability="docs:read")
async def get_doc(request: web.Request) -> web.Response:
    row = await fetch_one(request, "api_get_doc", _ref(request))
    if row is None:
        raise not_found("no such document")
    return doc_response(row)


@routes.put(
    DOC_PATH,
    'Create or replace a document; If-Match: "<version>" makes it conditional (409)',
    "docs",
    capability="docs:write",
    request_body=DOC_BODY,
    headers=("If-Match",),
    also_ok=(201,),
)
async def put_doc(request: web.Request) -> web.Response:
    expected = if_match_version(request)
    data = await read_json(request)
    row = await fetch_one(
        request, "api_put_doc", _ref(request, data=Jsonb(data), if_version=expected)
    )
    assert row is not None
    return doc_response(row, status=201 if row["created"] else 200)


@routes.delete(
    DOC_PATH,
    'Delete a document; If-Match: "<version>" makes it conditional (409)',
    "docs",
    capability="docs:write",
    ok_status=204,
    headers=("If-Match",),
)
async def delete_doc(request: web.Request) -> web.Response:
    expected = if_match_version(request)
    await fetch_one(request, "api_delete_doc", _ref(request, if_version=expected))
    return web.Response(status=204)
