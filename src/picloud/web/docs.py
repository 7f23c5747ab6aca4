"""Document collections: ``/api/v1/apps/{app_id}/collections/{collection}/docs[/{id}]``.

Documents are JSON objects with a version that grows by one on every write. ``ETag``
carries the version; ``If-Match: "<version>"`` on PUT and DELETE makes the write
conditional (409 version_conflict when the document has moved on). Capabilities
docs:read / docs:write. Changes fan out through the row trigger on picloud.docs.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from psycopg.types.json import Jsonb

from picloud.web.auth import require_app
from picloud.web.errors import bad_request, not_found
from picloud.web.jsonio import json_response, read_json
from picloud.web.params import if_match_version
from picloud.web.routing import routes
from picloud.web.source_common import page_of, path_param
from picloud.web.sql import fetch_all, fetch_one

COLLECTION_PATH = "/api/v1/apps/{app_id}/collections/{collection}/docs"
DOC_PATH = COLLECTION_PATH + "/{id}"
DOC_BODY = {"type": "object", "description": "the document: any JSON object"}


async def read_document(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request(f"a document must be a JSON object, not {type(body).__name__}")
    return body


def doc_response(row: dict[str, Any], status: int = 200) -> web.Response:
    row.pop("created", None)
    return json_response(row, status=status, headers={"ETag": f'"{row["version"]}"'})


def _ref(request: web.Request, app: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "app_id": app["id"],
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
    _, app = await require_app(request, "docs:read")
    page = page_of(request)
    await fetch_one(request, "check_doc_ref", _ref(request, app))
    rows = await fetch_all(request, "doc_list", _ref(request, app, **page.params()))
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
    _, app = await require_app(request, "docs:write")
    data = await read_document(request)
    row = await fetch_one(request, "doc_create", _ref(request, app, data=Jsonb(data)))
    assert row is not None
    return doc_response(row, status=201)


@routes.get(DOC_PATH, "Get a document (ETag: its version)", "docs", capability="docs:read")
async def get_doc(request: web.Request) -> web.Response:
    _, app = await require_app(request, "docs:read")
    await fetch_one(request, "check_doc_ref", _ref(request, app))
    row = await fetch_one(request, "doc_get", _ref(request, app))
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
    _, app = await require_app(request, "docs:write")
    expected = if_match_version(request)
    data = await read_document(request)
    row = await fetch_one(
        request, "doc_put", _ref(request, app, data=Jsonb(data), if_version=expected)
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
    _, app = await require_app(request, "docs:write")
    expected = if_match_version(request)
    await fetch_one(request, "doc_delete", _ref(request, app, if_version=expected))
    return web.Response(status=204)
