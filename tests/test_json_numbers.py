"""JSON numbers: what cannot round-trip is refused on the way in (400 naming the field);
whatever psql stored reads back as the same number text on every read path (issue 11)."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import psycopg
import pytest

from picloud import jsonnum
from picloud.db import Row
from picloud.dispatcher.handlers import Claimed, HandlerFailed, call_webhook, webhook_body
from tests.fix_server import Api

Conn = psycopg.Connection[Row]
HUGE = "123456789012345678901234567890"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"n": 1e30}', None),
        (b'{"a": [1, {"b": 9223372036854775808}]}', "$.a[1].b"),
        (b'{"n": -9223372036854775809e0}', None),
        (b'{"n": [1.5, ' + HUGE.encode() + b"]}", "$.n[1]"),
        (b"18446744073709551615", "$"),
    ],
)
async def test_numbers_that_cannot_round_trip_are_refused(
    api: Api, db: Conn, body: bytes, where: str | None
) -> None:
    app = await api.create_app("nums")
    base = f"/api/v1/apps/{app['id']}"
    replies = [
        await api.put(f"{base}/kv/x", data=body),
        await api.post(f"{base}/collections/c/docs", data=body),
    ]
    assert (await api.post(f"{base}/topics", json={"name": "t"})).status == 201
    message = b'{"message": ' + body + b"}"
    replies.append(await api.post(f"{base}/topics/t/messages", data=message))
    for reply in replies:
        if where is None:  # a double, written as one: kept
            assert reply.status in (200, 201), reply.raw
            continue
        assert (reply.status, reply.error_code) == (400, "number_out_of_range"), reply.raw
        assert where.replace("$", "") in reply.json["error"]["message"].replace("$", "")
    if where is not None:
        counts = db.execute(
            "SELECT (SELECT count(*) FROM picloud.kv) + (SELECT count(*) FROM picloud.docs)"
            " + (SELECT count(*) FROM picloud.messages) AS n"
        ).fetchone()
        assert counts == {"n": 0}, "a refused body was written"
    assert (await api.put(f"{base}/kv/y", data=b"1e400")).status == 400


async def test_edges_of_the_range_are_kept(api: Api) -> None:
    app = await api.create_app("edges")
    value = [2**63 - 1, -(2**63), 1e30, 1.5e300, -2.5e-300, 0.1, 9007199254740993]
    path = f"/api/v1/apps/{app['id']}/kv/edge"
    assert (await api.put(path, json=value)).status == 201
    for reply in [await api.get(path), await api.get(f"/api/v1/apps/{app['id']}/kv")]:
        assert reply.status == 200, reply.raw
        got = reply.json
        assert (got["value"] if "value" in got else got["entries"][0]["value"]) == value


async def test_numbers_written_from_psql_read_back_everywhere(api: Api, db: Conn) -> None:
    app = await api.create_app("psql")
    app_id = app["id"]
    stored = f'{{"big": {HUGE}, "wide": 1e400, "tiny": 1e-400, "neg": -{HUGE}.5}}'
    texts = [HUGE, "1" + "0" * 400, "-" + HUGE + ".5"]
    db.execute("INSERT INTO picloud.kv (app_id, key, value) VALUES (%s, 'k', %s)", (app_id, stored))
    db.execute(
        "INSERT INTO picloud.docs (app_id, collection, id, data) VALUES (%s, 'c', 'd', %s)",
        (app_id, stored),
    )
    db.execute("SELECT picloud.create_topic(%s, 't', false, 'public')", (app_id,))
    db.execute("SELECT picloud.publish(%s, 't', %s)", (app_id, stored))
    hook = db.execute(
        "INSERT INTO picloud.handlers (app_id, name, kind, url) VALUES (%s, 'h', 'webhook',"
        " 'https://example.com/') RETURNING id",
        (app_id,),
    ).fetchone()
    assert hook is not None
    db.execute(
        "INSERT INTO picloud.triggers (app_id, name, source, handler_id, max_attempts)"
        " VALUES (%s, 't', 'kv', %s, 1)",
        (app_id, hook["id"]),
    )
    db.execute("SET picloud.dispatch_backoff_base_ms = 0")
    db.execute("SELECT picloud.enqueue_event(%s, 'kv', 'k', %s)", (app_id, stored))
    claimed = db.execute("SELECT id FROM picloud.claim_deliveries('w', 1, '1 min')").fetchone()
    assert claimed is not None
    db.execute("SELECT picloud.fail_delivery(%s, 'w', 'HTTP 500')", (claimed["id"],))
    base = f"/api/v1/apps/{app_id}"
    paths = [
        "/kv/k",
        "/kv",
        "/collections/c/docs/d",
        "/collections/c/docs",
        "/topics/t/messages",
        "/deliveries",
        f"/deliveries/{claimed['id']}",
        "/dead-letters",
    ]
    for path in paths:
        reply = await api.get(base + path)
        assert reply.status == 200, (path, reply.raw)
        for text in texts:
            assert text.encode() in reply.raw, (path, text)
        assert b'"tiny":0.' in reply.raw.replace(b" ", b""), path
    # SSE frames (the dashboard's API-key stream replays the same frames as /realtime).
    async with api.session.get(
        f"{api.base_url}{base}/topics/t/stream?last_event_id=0",
        headers={"Authorization": f"Bearer {api.key}"},
    ) as stream:
        assert stream.status == 200
        frame = b""
        while b"data:" not in frame or not frame.endswith(b"\n\n"):
            frame += await asyncio.wait_for(stream.content.readany(), 10)
    for text in texts:
        assert text.encode() in frame, text


def test_loads_keeps_unencodable_numbers_as_text() -> None:
    value = jsonnum.loads(f"[{HUGE}, 1, 2.5, 0.{'0' * 400}1, 0.0, -0]")
    assert orjson.dumps(value) == f"[{HUGE},1,2.5,0.{'0' * 400}1,0.0,0]".encode()
    assert value[1:3] == [1, 2.5]


def _claimed(event: object) -> Claimed:
    return Claimed(
        1, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "kv", "k", event, 1, 1,
        "webhook", "https://example.com/", "secret-secret-secret", None, 1000,
    )  # fmt: skip


async def test_a_webhook_body_that_cannot_be_built_is_a_handler_failure() -> None:
    assert HUGE.encode() in webhook_body(_claimed(jsonnum.loads(f'{{"n": {HUGE}}}')))
    with pytest.raises(HandlerFailed, match="webhook body cannot be built"):
        await call_webhook(None, _claimed({"n": 2**70}), 1.0)  # type: ignore[arg-type]
