"""Request bodies: a declared length over the route's limit is 413 before reading; a
body that does not arrive in time is 408 (issue 11)."""

from __future__ import annotations

import asyncio
import time

import orjson

from tests.fix_server import ADMIN_KEY, Api, ServerFactory


async def exchange(port: int, head: str, body: bytes = b"") -> tuple[int, bytes, float]:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    rest = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":")[1])
        for line in rest.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    payload = await asyncio.wait_for(reader.readexactly(length), 10)
    writer.close()
    return int(status_line.split()[1]), payload, time.monotonic() - started


def request_head(method: str, path: str, length: int, content_type: str) -> str:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n"
    )


async def test_declared_length_over_the_limit_is_413_at_once(
    server_factory: ServerFactory, http_session: object
) -> None:
    server = await server_factory(http_body_timeout_sec=30.0)
    api = Api(http_session, server.url)  # type: ignore[arg-type]
    app = await api.create_app("bodies")
    base = f"/api/v1/apps/{app['id']}"
    await api.post(f"{base}/topics", json={"name": "t"})
    for method, path in [
        ("PUT", f"{base}/kv/k"),
        ("POST", f"{base}/collections/c/docs"),
        ("POST", f"{base}/topics/t/messages"),
        ("POST", f"{base}/topics/t/tokens"),
        ("POST", "/api/v1/apps"),
        ("PUT", f"{base}/files/big.bin"),
    ]:
        head = request_head(method, path, 99999999999, "application/json")
        status, payload, took = await exchange(server.port, head)
        assert status == 413, (path, payload)
        assert orjson.loads(payload)["error"]["code"] == "too_large"
        assert took < 5, "the server waited for a body it had refused"
    assert (await api.get(f"{base}/kv/k")).status == 404


async def test_body_that_does_not_arrive_is_408(
    server_factory: ServerFactory, http_session: object
) -> None:
    server = await server_factory(http_body_timeout_sec=0.5)
    api = Api(http_session, server.url)  # type: ignore[arg-type]
    app = await api.create_app("slow")
    base = f"/api/v1/apps/{app['id']}"
    for method, path in [("PUT", f"{base}/kv/k"), ("PUT", f"{base}/files/slow.txt")]:
        head = request_head(method, path, 100, "application/json")
        status, payload, took = await exchange(server.port, head, b'{"a": ')
        assert status == 408, (path, payload)
        assert orjson.loads(payload)["error"]["code"] == "body_timeout"
        assert 0.4 < took < 5
    assert (await api.get(f"{base}/kv/k")).status == 404
    assert (await api.get(f"{base}/files/slow.txt")).status == 404
