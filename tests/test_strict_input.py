"""Strict ids, positions and headers; one catch-all for the unexpected (issue 11).

Every malformed form is a clear 4xx with the JSON envelope — never a 500, never a
traceback; a well-formed id that names nothing stays 404.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from picloud.web import meta
from tests.fix_server import ADMIN_KEY, STATUSES, Api, Server, TracebackLog, tracebacks_for_4xx

BAD_NUMBERS = ["²", "%C2%B2", "٣", "1_0", " 1", "+1", "-1", "0x1", "1" * 20, "9" * 4000]


async def raw_request(server: Server, head: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(head)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head_part, _, body = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("header", "status"),
    [(b"Authorization: Bearer \xff\xfe", 401), (b"X-Anything: \xc3\x28", 400)],
)
async def test_headers_that_do_not_decode(server: Server, header: bytes, status: int) -> None:
    head = (
        b"GET /api/v1/apps HTTP/1.1\r\nHost: localhost\r\n"
        + header
        + b"\r\nConnection: close\r\n\r\n"
    )
    got, headers, body = await raw_request(server, head)
    assert got == status, body
    assert orjson.loads(body)["error"]["code"] in ("bad_request", "unauthorized")
    assert headers["content-type"].startswith("application/json")


async def test_bad_host_bytes(server: Server) -> None:
    for host in [b"\xff.localhost", b"a\xc3.localhost:80"]:
        head = (
            b"GET /realtime/topics/t HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
        )
        got, _, body = await raw_request(server, head)
        assert got == 400, body


async def test_last_event_id_is_ascii_digits_within_bigint(api: Api) -> None:
    app = await api.create_app("strict")
    await api.post(f"/api/v1/apps/{app['id']}/topics", json={"name": "t", "auth_mode": "public"})
    host = {"Host": "strict.localhost"}
    for bad in [*BAD_NUMBERS, "9223372036854775808"]:
        reply = await api.get(f"/realtime/topics/t?last_event_id={bad}", headers=host)
        assert reply.status == 400, (bad, reply.raw)
        if bad != " 1":  # a header's surrounding spaces are not part of its value
            header = {**host, "Last-Event-ID": bad.replace("%C2%B2", "x")}
            reply = await api.get("/realtime/topics/t", headers=header)
            assert reply.status == 400, (bad, reply.raw)
    stream = f"/api/v1/apps/{app['id']}/topics/t/stream?last_event_id=%C2%B2"
    assert (await api.get(stream)).status == 400


async def test_if_match_and_limits(api: Api) -> None:
    app = await api.create_app("ifm")
    base = f"/api/v1/apps/{app['id']}"
    created = await api.post(f"{base}/collections/c/docs", json={"a": 1})
    assert created.status == 201
    doc = f"{base}/collections/c/docs/{created.json['id']}"
    for bad in ['"²"', "²", '"9223372036854775808"', '"' + "9" * 4000 + '"', '"0"', '"-1"']:
        reply = await api.put(doc, json={"a": 2}, headers={"If-Match": bad})
        assert (reply.status, reply.error_code) == (400, "invalid_if_match"), (bad, reply.raw)
        reply = await api.delete(doc, headers={"If-Match": bad})
        assert reply.status == 400, bad
    assert (await api.put(doc, json={"a": 2}, headers={"If-Match": '"1"'})).status == 200
    for path in [f"{base}/kv", f"{base}/deliveries", f"{base}/collections/c/docs"]:
        for bad in [*BAD_NUMBERS, "0", "1001"]:
            reply = await api.get(f"{path}?limit={bad}")
            assert reply.status == 400, (path, bad, reply.raw)
    await api.post(f"{base}/topics", json={"name": "t"})
    for bad in [*BAD_NUMBERS, "9223372036854775808"]:
        reply = await api.get(f"{base}/topics/t/messages?after={bad}")
        assert reply.status == 400, (bad, reply.raw)


async def test_path_ids(api: Api) -> None:
    app = await api.create_app("ids")
    base = f"/api/v1/apps/{app['id']}"
    for kind in ["deliveries", "dead-letters"]:
        for bad in [*BAD_NUMBERS, "0", "9223372036854775808"]:
            reply = await api.get(f"{base}/{kind}/{bad}")
            assert (reply.status, reply.error_code) == (400, "invalid_id"), (kind, bad, reply.raw)
        assert (await api.get(f"{base}/{kind}/9223372036854775807")).status == 404
    assert (await api.post(f"{base}/dead-letters/%C2%B2/retry")).status == 400
    for bad in ["not-a-uuid", "%C2%B2", "0" * 5000]:
        assert (await api.get(f"/api/v1/apps/{bad}")).status == 404
        assert (await api.get(f"{base}/handlers/{bad}")).status == 404


async def test_unexpected_errors_are_one_json_500_with_a_request_id(
    api: Api, server: Server, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A value the encoder cannot take stands for any bug in a handler.
    monkeypatch.setattr(meta, "VERSIONS", {"server": object()})
    with caplog.at_level(logging.ERROR, logger="picloud.web.errors"):
        reply = await api.get("/version")
    assert reply.status == 500, reply.raw
    assert reply.headers["Content-Type"].startswith("application/json")
    rid = reply.headers["X-Request-Id"]
    assert reply.json["error"] == {
        "code": "internal",
        "message": "internal error",
        "request_id": rid,
    }
    records = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(records) == 1 and records[0].exc_info is not None
    assert rid in records[0].getMessage()


async def test_request_ids_and_4xx_without_tracebacks(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        first = await api.get("/api/v1/apps/nope")
        mine = await api.get("/version", headers={"X-Request-Id": "abc-123"})
        odd = await api.get("/version", headers={"X-Request-Id": "x" * 200})
        missing = await api.get("/api/v1/apps", key="wrong")
    assert first.status == 404 and missing.status == 401
    assert len(first.headers["X-Request-Id"]) == 32
    assert mine.headers["X-Request-Id"] == "abc-123"
    assert odd.headers["X-Request-Id"] != "x" * 200
    assert not [r for r in caplog.records if r.exc_info], "a 4xx logged a traceback"


async def test_405_names_allowed_methods(api: Api) -> None:
    reply = await api.call("PUT", "/api/v1/apps")
    assert (reply.status, reply.error_code) == (405, "method_not_allowed")
    assert set(reply.headers["Allow"].split(",")) >= {"GET", "POST"}


async def test_patch_with_explicit_null_is_400(api: Api) -> None:
    app = await api.create_app("nulls")
    base = f"/api/v1/apps/{app['id']}"
    assert (await api.post(f"{base}/topics", json={"name": "t"})).status == 201
    for path, field in [(f"{base}/topics/t", "auth_mode"), (base, "name"), (base, "slug")]:
        reply = await api.patch(path, json={field: None})
        assert reply.status == 400, (path, field, reply.raw)
        assert field in reply.json["error"]["message"]
    assert ADMIN_KEY


def test_the_session_check_flags_a_traceback_for_a_4xx() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, None)
    records: list[tuple[str | None, logging.LogRecord]] = [("r1", record), ("r2", record)]
    assert tracebacks_for_4xx(records, {"r1": 404, "r2": 500}) == ["404 (request r1): boom"]
    assert tracebacks_for_4xx([(None, record)], {}) == []


async def test_requests_are_recorded_for_the_session_check(
    api: Api, no_traceback_for_a_4xx: TracebackLog
) -> None:
    reply = await api.get("/api/v1/apps/nope")
    assert STATUSES[reply.headers["X-Request-Id"]] == 404
    assert no_traceback_for_a_4xx in logging.getLogger().handlers


async def test_integers_beyond_a_columns_range_are_400(api: Api) -> None:
    # An integer that is a valid JSON int64 but too large for an integer column is the SQL
    # function's 22003, not a failed function lookup.
    app = await api.create_app("strict-ints")
    base = f"/api/v1/apps/{app['id']}"
    handler = {"name": "h", "kind": "webhook", "url": "http://127.0.0.1:9/h"}
    for timeout_ms in (2**31, 2**40, 2**63 - 1):
        reply = await api.post(f"{base}/handlers", json={**handler, "timeout_ms": timeout_ms})
        assert reply.status == 400, (timeout_ms, reply.raw)
    created = await api.post(f"{base}/handlers", json=handler)
    assert created.status == 201, created.raw
    hid = created.json["id"]
    reply = await api.patch(f"{base}/handlers/{hid}", json={"timeout_ms": 2**40})
    assert reply.status == 400, reply.raw
    trigger = {"source": "kv", "handler_id": hid, "max_attempts": 2**40}
    reply = await api.post(f"{base}/triggers", json=trigger)
    assert reply.status == 400, reply.raw
    listed = await api.get(f"{base}/handlers")
    assert [h["name"] for h in listed.json["handlers"]] == ["h"]
