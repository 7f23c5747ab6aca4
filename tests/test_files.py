"""Files over HTTP: raw bodies, empty files, streaming, limits, bad paths, interruptions."""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psycopg
import pytest
from yarl import URL

from picloud.files.store import BlobStore
from picloud.web.files import _commit_row
from tests.fix_server import ADMIN_KEY, Api, Server, ServerFactory
from tests.polling import until

EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def blobs_on_disk(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_empty_file_create_and_update_round_trip(api: Api, server: Server) -> None:
    app = await api.create_app("files-empty")
    url = f"/api/v1/apps/{app['id']}/files/notes/empty.txt"
    created = await api.put(url, data=b"", headers={"Content-Type": "text/plain"})
    assert created.status == 201, created.raw
    assert (created.json["size"], created.json["sha256"]) == (0, EMPTY_SHA)
    assert created.headers["ETag"] == f'"{EMPTY_SHA}"'
    got = await api.get(url)
    assert (got.status, got.raw, got.headers["Content-Length"]) == (200, b"", "0")
    assert got.headers["Content-Type"] == "text/plain"

    filled = await api.put(url, data=b"hello", headers={"Content-Type": "text/plain"})
    assert (filled.status, filled.json["size"]) == (200, 5)
    assert (await api.get(url)).raw == b"hello"
    emptied = await api.put(url, data=b"", headers={"Content-Type": "text/plain"})
    assert (emptied.status, emptied.json["size"], emptied.json["sha256"]) == (200, 0, EMPTY_SHA)
    got = await api.get(url)
    assert (got.status, got.raw) == (200, b"")
    # Replaced blobs are gone: one blob on disk for the one file.
    assert len(blobs_on_disk(server.settings.files_root)) == 1


async def test_file_round_trip_list_etag_and_delete(api: Api, server: Server) -> None:
    app = await api.create_app("files-crud")
    base = f"/api/v1/apps/{app['id']}/files"
    body = bytes(range(256)) * 100
    reply = await api.put(f"{base}/img/logo.png", data=body, headers={"Content-Type": "image/png"})
    assert reply.status == 201
    sha = hashlib.sha256(body).hexdigest()
    assert reply.json == {**reply.json, "path": "img/logo.png", "size": len(body), "sha256": sha}
    assert "blob" not in reply.json
    got = await api.get(f"{base}/img/logo.png")
    assert (got.raw, got.headers["Content-Type"], got.headers["ETag"]) == (
        body,
        "image/png",
        f'"{sha}"',
    )
    cached = await api.get(f"{base}/img/logo.png", headers={"If-None-Match": f'"{sha}"'})
    assert cached.status == 304
    await api.put(f"{base}/b.bin", data=b"x")
    await api.put(f"{base}/img/a.png", data=b"y")
    listed = await api.get(f"{base}?prefix=img/")
    assert [f["path"] for f in listed.json["files"]] == ["img/a.png", "img/logo.png"]
    page = await api.get(f"{base}?limit=2")
    assert page.json["next_cursor"] == "img/a.png"
    assert (await api.delete(f"{base}/img/logo.png")).status == 204
    assert (await api.get(f"{base}/img/logo.png")).status == 404
    assert (await api.delete(f"{base}/img/logo.png")).status == 404
    assert len(blobs_on_disk(server.settings.files_root)) == 2


async def test_large_file_streams_without_loading_into_memory(
    server_factory: ServerFactory, http_session: aiohttp.ClientSession
) -> None:
    size, chunk = 24 * 1024 * 1024, 256 * 1024
    server = await server_factory(max_file_bytes=size)
    api = Api(http_session, server.url)
    app = await api.create_app("files-big")
    url = f"{server.url}/api/v1/apps/{app['id']}/files/big.bin"
    assert size > server.app._client_max_size  # more than aiohttp would ever buffer
    block = bytes(range(256)) * (chunk // 256)
    expected = hashlib.sha256()
    for _ in range(size // chunk):
        expected.update(block)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // chunk):
            yield block

    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/x-big"}
    tracemalloc.start()
    try:
        async with http_session.put(url, data=body(), headers=headers) as resp:
            assert resp.status == 201, await resp.text()
            assert (await resp.json())["size"] == size
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        got = hashlib.sha256()
        received = 0
        async with http_session.get(url, headers=headers) as resp:
            assert resp.status == 200 and resp.content_length == size
            async for part in resp.content.iter_chunked(chunk):
                got.update(part)
                received += len(part)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size and got.hexdigest() == expected.hexdigest()
    # Client and server share this process: neither side held the 24 MiB body.
    assert upload_peak < 6 * 1024 * 1024, upload_peak
    assert download_peak < 6 * 1024 * 1024, download_peak


async def test_oversize_bodies_are_refused_and_leave_nothing(
    server_factory: ServerFactory, http_session: aiohttp.ClientSession
) -> None:
    server = await server_factory(max_file_bytes=1000)
    api = Api(http_session, server.url)
    app = await api.create_app("files-limit")
    url = f"/api/v1/apps/{app['id']}/files/f.bin"
    assert (await api.put(url, data=b"x" * 1000)).status == 201
    reply = await api.put(url, data=b"y" * 1001)
    assert (reply.status, reply.error_code) == (413, "too_large")
    assert "1000 bytes" in reply.json["error"]["message"]

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"z" * 400

    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with http_session.put(server.url + url, data=chunked(), headers=headers) as resp:
        assert resp.status == 413
    got = await api.get(url)
    assert got.raw == b"x" * 1000
    assert len(blobs_on_disk(server.settings.files_root)) == 1


async def test_bad_paths_are_refused(api: Api, http_session: aiohttp.ClientSession) -> None:
    app = await api.create_app("files-paths")
    base = f"{api.base_url}/api/v1/apps/{app['id']}/files/"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    cases = {
        "%2Fetc%2Fpasswd": "absolute",
        "a/%2E%2E/b": '".."',
        "%2E%2E/secret": '".."',
        "a/../b": '".."',
        "a//b": "empty path segments",
        "a/": "empty path segments",
        "a%00b": "NUL",
        "a%5Cb": "backslash",
    }
    for raw, why in cases.items():
        for method in ("PUT", "GET", "DELETE"):
            async with http_session.request(
                method, URL(base + raw, encoded=True), data=b"data", headers=headers
            ) as resp:
                body = await resp.json()
                assert resp.status == 400, (raw, method, body)
                assert why in body["error"]["message"], (raw, body)
    listed = await api.get(f"/api/v1/apps/{app['id']}/files")
    assert listed.json["files"] == []


async def test_interrupted_upload_leaves_no_visible_file(api: Api, server: Server) -> None:
    app = await api.create_app("files-cut")
    root = server.settings.files_root
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        (
            f"PUT /api/v1/apps/{app['id']}/files/cut.bin HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
            "Content-Length: 10000000\r\n\r\n"
        ).encode()
        + b"a" * 300_000
    )
    await writer.drain()
    # The upload is under way: its tmp file exists and nothing is visible yet.
    await until(lambda: any(".tmp." in p.name for p in blobs_on_disk(root)))
    assert (await api.get(f"/api/v1/apps/{app['id']}/files/cut.bin")).status == 404
    writer.transport.abort()
    await until(lambda: blobs_on_disk(root) == [])
    assert (await api.get(f"/api/v1/apps/{app['id']}/files/cut.bin")).status == 404
    assert (await api.get(f"/api/v1/apps/{app['id']}/files")).json["files"] == []
    del reader


async def test_failed_writes_clean_up_and_crash_leftovers_stay_invisible(
    api: Api, server: Server
) -> None:
    app = await api.create_app("files-crash")
    store = BlobStore(server.settings.files_root)

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.write(app["id"], broken(), 1000)
    assert blobs_on_disk(server.settings.files_root) == []

    # What a killed process leaves behind: a tmp file and a complete, unreferenced blob.
    written = await store.write(app["id"], _once(b"complete"), 1000)
    tmp = store.path_of(app["id"], uuid.uuid4().hex).with_suffix(".tmp.deadbeef")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"half")
    assert store.path_of(app["id"], written.blob).exists()
    assert (await api.get(f"/api/v1/apps/{app['id']}/files")).json["files"] == []
    # The opposite (a row whose blob is gone) cannot come from a crash; if an operator
    # causes it, reading says so instead of serving something else.
    assert (await api.put(f"/api/v1/apps/{app['id']}/files/gone.txt", data=b"x")).status == 201
    for blob in blobs_on_disk(server.settings.files_root):
        if ".tmp." not in blob.name and blob.name != written.blob:
            blob.unlink()
    reply = await api.get(f"/api/v1/apps/{app['id']}/files/gone.txt")
    assert (reply.status, reply.error_code) == (500, "blob_missing")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_files_capabilities(api: Api) -> None:
    app = await api.create_app("files-caps")
    url = f"/api/v1/apps/{app['id']}/files/a.txt"
    reader = await api.create_key(app["id"], "files:read")
    writer = await api.create_key(app["id"], "files:write")
    assert (await api.put(url, data=b"a", key=writer)).status == 201
    assert (await api.put(url, data=b"b", key=reader)).status == 403
    assert (await api.delete(url, key=reader)).status == 403
    assert (await api.get(url, key=reader)).raw == b"a"
    assert (await api.get(url, key=writer)).status == 403
    assert (await api.get(url, key=None)).status == 401


async def test_a_failed_row_commit_discards_the_new_blob(api: Api, server: Server) -> None:
    app = await api.create_app("files-commit")
    store = BlobStore(server.settings.files_root)
    written = await store.write(app["id"], _once(b"orphan to be"), 1000)
    # The app goes away between the blob write and the row commit: the insert fails.
    assert (await api.delete(f"/api/v1/apps/{app['id']}")).status == 204
    params = {
        "app_id": uuid.UUID(app["id"]),
        "path": "x.bin",
        "size": written.size,
        "sha256": written.sha256,
        "content_type": "application/octet-stream",
        "blob": written.blob,
    }
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        await _commit_row(server.state, params["app_id"], params, written)
    assert blobs_on_disk(server.settings.files_root) == []


async def test_concurrent_uploads_to_one_path_leave_one_blob(api: Api, server: Server) -> None:
    app = await api.create_app("files-race")
    url = f"/api/v1/apps/{app['id']}/files/race.txt"
    bodies = [f"version {i}".encode() * 1000 for i in range(8)]
    replies = await asyncio.gather(*(api.put(url, data=body) for body in bodies))
    assert sorted(r.status for r in replies) == [200] * 7 + [201]
    final = (await api.get(url)).raw
    assert final in bodies
    assert len(blobs_on_disk(server.settings.files_root)) == 1
