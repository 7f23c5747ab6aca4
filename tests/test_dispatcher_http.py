"""Handlers, triggers, deliveries and dead letters over HTTP, and the dead-letters CLI."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import psycopg
import pytest

from picloud.db import Row
from tests.fix_server import Api, ServerFactory
from tests.procs import run_cli
from tests.test_dispatcher import FAST, Receiver, receiver, verify_signature

Conn = psycopg.Connection[Row]
__all__ = ["receiver"]  # the fixture, shared with test_dispatcher


@pytest.fixture
async def api(server_factory: ServerFactory, http_session: aiohttp.ClientSession) -> Api:
    """A server without background roles: these tests move deliveries by hand."""
    server = await server_factory(roles=frozenset())
    return Api(http_session, server.url)


async def test_handlers_crud_and_sql_handlers_need_instance_admin(api: Api, db: Conn) -> None:
    app = await api.create_app("hooks")
    base = f"/api/v1/apps/{app['id']}/handlers"
    key = await api.create_key(app["id"], "triggers:manage")

    made = await api.post(
        base, json={"name": "h1", "kind": "webhook", "url": "https://example.com/h"}, key=key
    )
    assert made.status == 201, made.raw
    handler = made.json
    assert handler["kind"] == "webhook" and len(handler["secret"]) == 64
    assert handler["timeout_ms"] == 10000
    listed = await api.get(base, key=key)
    assert [h["id"] for h in listed.json["handlers"]] == [handler["id"]]
    assert handler["secret"] not in listed.raw.decode(), "the secret is shown only at creation"
    got = await api.get(f"{base}/{handler['id']}", key=key)
    assert got.status == 200 and "secret" not in got.json

    patched = await api.patch(
        f"{base}/{handler['id']}", json={"timeout_ms": 500, "url": "http://x.test/"}, key=key
    )
    assert patched.status == 200 and patched.json["timeout_ms"] == 500
    assert patched.json["url"] == "http://x.test/"

    for bad in (
        {"name": "b", "kind": "ftp", "url": "https://x"},
        {"name": "b", "kind": "webhook"},
        {"name": "b", "kind": "webhook", "url": "not a url"},
        {"name": "b", "kind": "webhook", "url": "https://x.test", "secret": "short"},
        {"name": "b", "kind": "webhook", "url": "https://x.test", "timeout_ms": 0},
        {"name": "b", "kind": "webhook", "url": "https://x.test", "function": "a.b"},
        {"name": "b c", "kind": "webhook", "url": "https://x.test"},
        {"name": "b", "kind": "webhook", "url": "https://x.test", "extra": 1},
    ):
        reply = await api.post(base, json=bad, key=key)
        assert reply.status == 400, (bad, reply.raw)
    dup = await api.post(base, json={"name": "h1", "kind": "webhook", "url": "https://x"}, key=key)
    assert dup.status == 409

    db.execute("CREATE SCHEMA picloud_handlers")
    db.execute("CREATE FUNCTION picloud_handlers.noop(event jsonb) RETURNS void LANGUAGE sql AS ''")
    sql_body = {"name": "s", "kind": "sql", "function": "picloud_handlers.noop"}
    assert (await api.post(base, json=sql_body, key=key)).status == 403
    made = await api.post(base, json=sql_body)
    assert made.status == 201 and made.json["function"] == "picloud_handlers.noop"
    for fn in ("public.noop", "picloud_handlers.missing", 'picloud_handlers."x"'):
        reply = await api.post(base, json={**sql_body, "name": "s2", "function": fn})
        assert reply.status == 400, reply.raw
    assert (
        await api.patch(f"{base}/{made.json['id']}", json={"timeout_ms": 5}, key=key)
    ).status == 403

    # Other apps' keys see nothing; unknown ids are 404.
    other = await api.create_app("other")
    other_key = await api.create_key(other["id"], "triggers:manage")
    assert (await api.get(base, key=other_key)).status == 403
    assert (await api.get(f"{base}/{handler['id']}".replace(app["id"], other["id"]))).status == 404
    assert (await api.get(f"{base}/nope", key=key)).status == 404
    assert (await api.delete(f"{base}/{handler['id']}", key=key)).status == 204
    assert (await api.delete(f"{base}/{handler['id']}", key=key)).status == 404


async def test_triggers_crud(api: Api) -> None:
    app = await api.create_app("trig")
    key = await api.create_key(app["id"], "triggers:manage")
    hbase = f"/api/v1/apps/{app['id']}/handlers"
    tbase = f"/api/v1/apps/{app['id']}/triggers"
    hook = (
        await api.post(
            hbase, json={"name": "h", "kind": "webhook", "url": "https://x.test"}, key=key
        )
    ).json
    body = {
        "name": "orders",
        "source": "pubsub",
        "filter": {"match": "orders.*"},
        "handler_id": hook["id"],
        "max_attempts": 4,
        "enabled": True,
    }
    made = await api.post(tbase, json=body, key=key)
    assert made.status == 201, made.raw
    trig = made.json
    assert {k: trig[k] for k in body} == body
    minimal = await api.post(
        tbase, json={"name": "all-kv", "source": "kv", "handler_id": hook["id"]}, key=key
    )
    assert minimal.status == 201
    assert (minimal.json["filter"], minimal.json["max_attempts"], minimal.json["enabled"]) == (
        {},
        5,
        True,
    )
    listed = await api.get(tbase, key=key)
    assert [t["name"] for t in listed.json["triggers"]] == ["orders", "all-kv"]

    patched = await api.patch(
        f"{tbase}/{trig['id']}", json={"enabled": False, "filter": {"types": ["publish"]}}, key=key
    )
    assert patched.status == 200
    assert (patched.json["enabled"], patched.json["filter"]) == (False, {"types": ["publish"]})
    assert (await api.patch(f"{tbase}/{trig['id']}", json={"source": "kv"}, key=key)).status == 400

    for bad in (
        {**body, "name": "x", "source": "email"},
        {**body, "name": "x", "filter": {"match": 1}},
        {**body, "name": "x", "filter": {"bogus": 1}},
        {**body, "name": "x", "filter": "orders"},
        {**body, "name": "x", "max_attempts": 0},
        {**body, "name": "x", "handler_id": "nope"},
        {**body, "name": "x", "handler_id": "00000000-0000-0000-0000-000000000000"},
    ):
        reply = await api.post(tbase, json=bad, key=key)
        assert reply.status == 400, (bad, reply.raw)
    assert (await api.post(tbase, json=body, key=key)).status == 409

    in_use = await api.delete(f"{hbase}/{hook['id']}", key=key)
    assert (in_use.status, in_use.error_code) == (409, "conflict")
    assert (await api.get(f"{tbase}/{trig['id']}", key=key)).json["name"] == "orders"
    assert (await api.delete(f"{tbase}/{trig['id']}", key=key)).status == 204
    assert (await api.get(f"{tbase}/{trig['id']}", key=key)).status == 404


def _dead_delivery(db: Conn, app_id: Any) -> tuple[int, int]:
    """A kv delivery that failed its only attempt, and its dead letter."""
    db.execute("SET picloud.dispatch_backoff_base_ms = 0")
    hook = db.execute(
        "INSERT INTO picloud.handlers (app_id, name, kind, url) VALUES (%s, 'h', 'webhook',"
        " 'http://127.0.0.1:9/') RETURNING id",
        (app_id,),
    ).fetchone()
    assert hook is not None
    db.execute(
        "INSERT INTO picloud.triggers (app_id, name, source, handler_id, max_attempts)"
        " VALUES (%s, 't', 'kv', %s, 1)",
        (app_id, hook["id"]),
    )
    db.execute("SELECT picloud.enqueue_event(%s, 'kv', 'k', '{\"type\": \"set\"}')", (app_id,))
    claimed = db.execute("SELECT id FROM picloud.claim_deliveries('w', 1, '1 min')").fetchone()
    assert claimed is not None
    db.execute("SELECT picloud.fail_delivery(%s, 'w', 'HTTP 500')", (claimed["id"],))
    dead = db.execute("SELECT id FROM picloud.dead_letters").fetchone()
    assert dead is not None
    return claimed["id"], dead["id"]


async def test_deliveries_and_dead_letters(api: Api, db: Conn) -> None:
    app = await api.create_app("dl")
    delivery_id, dead_id = _dead_delivery(db, app["id"])
    reader = await api.create_key(app["id"], "deliveries:read")
    manager = await api.create_key(app["id"], "dead_letters:manage")
    dbase = f"/api/v1/apps/{app['id']}/deliveries"
    lbase = f"/api/v1/apps/{app['id']}/dead-letters"

    listed = await api.get(dbase, key=reader)
    assert listed.status == 200
    assert [(d["id"], d["status"]) for d in listed.json["deliveries"]] == [(delivery_id, "dead")]
    assert (await api.get(f"{dbase}?status=done", key=reader)).json["deliveries"] == []
    assert (await api.get(f"{dbase}?source=kv&limit=1", key=reader)).json["deliveries"]
    assert (await api.get(f"{dbase}?status=bogus", key=reader)).status == 400
    assert (await api.get(f"{dbase}?limit=0", key=reader)).status == 400
    one = await api.get(f"{dbase}/{delivery_id}", key=reader)
    assert one.status == 200 and one.json["last_error"] == "HTTP 500"
    [attempt] = one.json["attempts"]
    assert {k: attempt[k] for k in ("attempt", "outcome", "error")} == {
        "attempt": 1,
        "outcome": "error",
        "error": "HTTP 500",
    }
    assert attempt["started_at"] and attempt["finished_at"]
    assert (await api.get(f"{dbase}/999999", key=reader)).status == 404
    assert (await api.get(f"{dbase}/x", key=reader)).status == 400
    assert (await api.get(lbase, key=reader)).status == 403
    assert (await api.get(dbase, key=manager)).status == 403

    letters = await api.get(lbase, key=manager)
    assert [d["id"] for d in letters.json["dead_letters"]] == [dead_id]
    assert letters.json["dead_letters"][0]["delivery_id"] == delivery_id
    assert (await api.get(f"{lbase}?source=docs", key=manager)).json["dead_letters"] == []
    got = await api.get(f"{lbase}/{dead_id}", key=manager)
    assert got.status == 200 and got.json["last_error"] == "HTTP 500"

    retried = await api.post(f"{lbase}/{dead_id}/retry", key=manager)
    assert retried.status == 201
    new_id = retried.json["delivery_id"]
    fresh = await api.get(f"{dbase}/{new_id}", key=reader)
    assert fresh.json["status"] == "pending" and fresh.json["retry_of"] == dead_id
    assert (await api.get(f"{lbase}/{dead_id}", key=manager)).json["retry_delivery_id"] == new_id

    # Another app cannot reach this app's dead letters through its own path.
    other = await api.create_app("other")
    assert (
        await api.post(f"/api/v1/apps/{other['id']}/dead-letters/{dead_id}/retry")
    ).status == 404
    assert (await api.delete(f"/api/v1/apps/{other['id']}/dead-letters/{dead_id}")).status == 404

    assert (await api.delete(f"{lbase}/{dead_id}", key=manager)).status == 204
    assert (await api.delete(f"{lbase}/{dead_id}", key=manager)).status == 404
    assert (await api.post(f"{lbase}/{dead_id}/retry", key=manager)).status == 404


def test_dead_letters_cli(database: str, db: Conn) -> None:
    app = db.execute(
        "INSERT INTO picloud.apps (slug, name) VALUES ('cli', 'cli') RETURNING id"
    ).fetchone()
    assert app is not None
    delivery_id, dead_id = _dead_delivery(db, app["id"])

    listed = run_cli(database, "--json", "dead-letters", "list", "cli")
    assert listed.returncode == 0, listed.stderr
    [letter] = json.loads(listed.stdout)["dead_letters"]
    assert (letter["id"], letter["delivery_id"], letter["source"]) == (dead_id, delivery_id, "kv")
    assert json.loads(
        run_cli(database, "--json", "dead-letters", "list", "cli", "--source", "docs").stdout
    ) == {"dead_letters": []}

    retried = run_cli(database, "--json", "dead-letters", "retry", str(dead_id))
    assert retried.returncode == 0, retried.stderr
    new_id = json.loads(retried.stdout)["delivery_id"]
    row = db.execute("SELECT status, retry_of FROM picloud.deliveries WHERE id = %s", (new_id,))
    assert row.fetchone() == {"status": "pending", "retry_of": dead_id}

    gone = run_cli(database, "--json", "dead-letters", "discard", str(dead_id))
    assert gone.returncode == 0, gone.stderr
    assert db.execute("SELECT count(*) AS n FROM picloud.dead_letters").fetchone() == {"n": 0}
    missing = run_cli(database, "--json", "dead-letters", "retry", str(dead_id))
    assert missing.returncode == 1 and f"no dead letter {dead_id}" in missing.stderr
    assert run_cli(database, "--json", "dead-letters", "discard", "12345").returncode == 1


async def test_publish_over_http_reaches_a_pubsub_webhook(
    server_factory: ServerFactory, http_session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    server = await server_factory(**FAST)
    admin = Api(http_session, server.url)
    app = await admin.create_app("e2e")
    key = await admin.create_key(app["id"], "triggers:manage", "topics:manage", "topics:publish")
    base = f"/api/v1/apps/{app['id']}"
    assert (await admin.post(f"{base}/topics", json={"name": "orders.eu"}, key=key)).status == 201
    hook = await admin.post(
        f"{base}/handlers",
        json={"name": "h", "kind": "webhook", "url": receiver.url + "/hook"},
        key=key,
    )
    assert hook.status == 201
    trig = await admin.post(
        f"{base}/triggers",
        json={
            "name": "orders",
            "source": "pubsub",
            "filter": {"match": "orders.*"},
            "handler_id": hook.json["id"],
        },
        key=key,
    )
    assert trig.status == 201
    published = await admin.post(
        f"{base}/topics/orders.eu/messages", json={"message": {"total": 3}}, key=key
    )
    assert published.status == 201

    hit = await receiver.next("/hook")
    verify_signature(hook.json["secret"], hit)
    body = hit.json
    assert (body["source"], body["trigger_id"], body["attempt"]) == ("pubsub", trig.json["id"], 1)
    event = body["event"]
    assert (event["type"], event["topic"], event["message"]) == (
        "publish",
        "orders.eu",
        {"total": 3},
    )
    assert event["message_id"] == published.json["id"]
