"""Files: ``/api/v1/apps/{app_id}/files[/{path}]`` with raw bodies (files:read/files:write).

PUT streams the body to disk (never wholly in memory), keeps its Content-Type and
answers with the metadata and ``ETag: "<sha256>"``; empty bodies are valid files.
Bodies over PICLOUD_MAX_FILE_BYTES are refused with 413 — at once when Content-Length
says so, else as soon as the stream passes the limit. See picloud.files.store for the
order of blob and row writes that keeps interrupted uploads invisible.

Metadata and authorisation are one statement per request. An upload is two, around its
body: the gate (picloud.authorize and the path, before a byte is stored) and the commit
of the row (picloud.file_put) once the blob is durable. A download adds the blob's bytes
to its one statement, a delete the unlinking of the blob after its one statement.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import aiohttp
import psycopg
from aiohttp import web

from picloud.files.store import BlobStore, BlobTooLarge, WrittenBlob, blocking
from picloud.queries import q
from picloud.web.auth import credentials
from picloud.web.bodies import body_chunks
from picloud.web.errors import ApiError, bad_request, not_found
from picloud.web.jsonio import json_response
from picloud.web.routing import routes
from picloud.web.source_common import page_of, path_param
from picloud.web.sql import fetch_all, fetch_one
from picloud.web.state import AppState, state_of

log = logging.getLogger(__name__)

FILE_PATH = "/api/v1/apps/{app_id}/files/{path:.+}"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
OPEN_ATTEMPTS = 3


def store_of(state: AppState) -> BlobStore:
    return state.files


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("blob", "old_blob")}


def etag(sha256: str) -> str:
    return f'"{sha256}"'


# Files are served on the API's origin: nothing in them may run there. Types a browser
# would render actively (markup, scripts, XML that can carry them) are downloads only.
SAFE_FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "text/ecmascript",
        "application/ecmascript",
    }
)


def file_headers(row: dict[str, Any]) -> dict[str, str]:
    """The headers of a file response: its ETag and type, never executable on our origin."""
    headers = {
        "ETag": etag(row["sha256"]),
        "Content-Type": row["content_type"],
        **SAFE_FILE_HEADERS,
    }
    media = row["content_type"].split(";", 1)[0].strip().lower()
    if media in ACTIVE_TYPES or media.endswith("+xml"):
        headers["Content-Disposition"] = "attachment"
    return headers


def content_type_of(request: web.Request) -> str:
    value = request.headers.get("Content-Type", "").strip() or DEFAULT_CONTENT_TYPE
    if len(value) > 255 or not value.isprintable():
        raise bad_request("Content-Type must be at most 255 printable characters")
    return value


async def _commit_row(
    state: AppState, app_id: uuid.UUID, params: dict[str, Any], written: WrittenBlob
) -> dict[str, Any]:
    """Commit the row for a durable blob, then unlink the blob it replaced. On failure,
    unlink the new blob unless a row may point at it (an ambiguous commit: re-read)."""
    store = store_of(state)
    try:
        async with state.db.connection() as conn:
            row = await (await conn.execute(q("file_put"), params)).fetchone()
    except BaseException as exc:
        refused = isinstance(exc, psycopg.Error) and exc.sqlstate is not None
        try:
            if refused:  # the server refused the statement: nothing was committed
                current = None
            else:
                async with state.db.connection() as conn:
                    cur = await conn.execute(
                        q("file_get"), {"app_id": app_id, "path": params["path"]}
                    )
                    current = await cur.fetchone()
            if current is None or current["blob"] != written.blob:
                store.discard(app_id, written.blob)
        except Exception:
            log.warning("could not tell whether blob %s is referenced; kept it", written.blob)
        raise
    assert row is not None
    if row["old_blob"] and row["old_blob"] != written.blob:
        await blocking(store.discard, app_id, row["old_blob"])
    return row


def _consume_outcome(task: asyncio.Future[Any]) -> None:
    """A shielded commit whose caller was cancelled: log its failure instead of leaving
    asyncio to complain that it was never retrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("file commit after a cancelled upload failed: %r", task.exception())


@routes.get(
    "/api/v1/apps/{app_id}/files",
    "List files (metadata) in path order",
    "files",
    capability="files:read",
    query=("prefix", "limit", "cursor"),
)
async def list_files(request: web.Request) -> web.Response:
    page = page_of(request)
    rows = await fetch_all(request, "api_list_files", {**credentials(request), **page.params()})
    files, next_cursor = page.shape(rows, "path")
    return json_response({"files": files, "next_cursor": next_cursor})


@routes.put(
    FILE_PATH,
    "Upload a file (raw body, Content-Type kept; empty is valid); 201 when new",
    "files",
    capability="files:write",
    request_body={"type": "string", "format": "binary"},
    request_content="application/octet-stream",
    also_ok=(201,),
)
async def put_file(request: web.Request) -> web.Response:
    state = state_of(request)
    path = path_param(request, "path", "file path")
    gate = await fetch_one(request, "api_upload_path", {**credentials(request), "path": path})
    assert gate is not None
    app_id: uuid.UUID = gate["app_id"]
    content_type = content_type_of(request)
    limit = state.settings.max_file_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"the file is larger than the limit of {limit} bytes")
    try:
        written = await store_of(state).write(app_id, body_chunks(request), limit)
    except BlobTooLarge as exc:
        raise ApiError(413, "too_large", str(exc)) from exc
    except (aiohttp.ClientPayloadError, ConnectionError) as exc:
        raise bad_request(f"the upload was interrupted: {exc}", "incomplete_body") from exc
    params = {
        "app_id": app_id,
        "path": path,
        "size": written.size,
        "sha256": written.sha256,
        "content_type": content_type,
        "blob": written.blob,
    }
    # Shielded: once the blob is durable, a client hanging up must not cut the commit
    # (and its clean-up) in half.
    commit = asyncio.ensure_future(_commit_row(state, app_id, params, written))
    commit.add_done_callback(_consume_outcome)
    row = await asyncio.shield(commit)
    status = 200 if row["old_blob"] else 201
    return json_response(public(row), status=status, headers={"ETag": etag(row["sha256"])})


@routes.get(
    FILE_PATH,
    "Download a file (Content-Type as uploaded, ETag: sha256)",
    "files",
    capability="files:read",
    response_content="*/*",  # the type it was uploaded with
    headers=("If-None-Match",),
    also_ok=(304,),
)
async def get_file(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    params = {**credentials(request), "path": path_param(request, "path", "file path")}
    missing: str | None = None
    # One statement; another only when the blob was replaced between it and the open.
    for _ in range(OPEN_ATTEMPTS):
        row = await fetch_one(request, "api_get_file", params)
        if row is None:
            raise not_found("no such file")
        app_id: uuid.UUID = row["app_id"]
        if row["blob"] == missing:
            log.error("file %s of app %s has no blob %s on disk", row["path"], app_id, missing)
            raise ApiError(500, "blob_missing", "the file's content is missing on this server")
        headers = file_headers(row)
        if request.headers.get("If-None-Match") == headers["ETag"]:
            return web.Response(status=304, headers={"ETag": headers["ETag"], **SAFE_FILE_HEADERS})
        try:
            handle = await blocking(store_of(state).open, app_id, row["blob"])
        except FileNotFoundError:
            missing = row["blob"]  # replaced (and unlinked) since the row was read? re-read
            continue
        try:
            response = web.StreamResponse(headers=headers)
            response.content_length = row["size"]
            await response.prepare(request)
            async for chunk in store_of(state).read_chunks(handle):
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            handle.close()
    raise ApiError(503, "unavailable", "the file keeps changing; try again")


@routes.delete(FILE_PATH, "Delete a file", "files", capability="files:write", ok_status=204)
async def delete_file(request: web.Request) -> web.Response:
    path = path_param(request, "path", "file path")
    row = await fetch_one(request, "api_delete_file", {**credentials(request), "path": path})
    if row is None:
        raise not_found("no such file")
    await blocking(store_of(state_of(request)).discard, row["app_id"], row["blob"])
    return web.Response(status=204)
