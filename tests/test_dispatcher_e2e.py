"""The six end-to-end paths: a source changes, the real dispatcher role runs a real handler.

Each test starts a PiCloud server with its dispatcher (and cron ticker) roles, registers
a handler and a trigger over HTTP, changes the source over HTTP, and waits for the handler
to fire: a signed webhook POST to a receiver on loopback, or an SQL handler that records
the event and NOTIFYs. SQL is used only to create that handler function and to make a
cron job due now instead of at the turn of the minute.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
import pytest
from aiohttp import web

from picloud.db import Row
from tests.fix_server import Api, Server, ServerFactory, free_port

Conn = psycopg.Connection[Row]
SECRET = "e2e-webhook-secret-0123456789"
WAIT_SEC = 15


@dataclass
class Receiver:
    """A webhook endpoint on loopback: /ok/<name> records and answers 204, /fail/<name>
    records and answers 500."""

    base_url: str
    calls: dict[str, asyncio.Queue[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(asyncio.Queue)
    )

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        stamp, _, mac = request.headers["PiCloud-Signature"].partition(",v1=")
        expected = hmac.new(
            SECRET.encode(), stamp.removeprefix("t=").encode() + b"." + raw, hashlib.sha256
        ).hexdigest()
        body = orjson.loads(raw)
        body["_signature_ok"] = hmac.compare_digest(mac, expected)
        body["_delivery_header"] = request.headers["PiCloud-Delivery-Id"]
        await self.calls[request.match_info["name"]].put(body)
        return web.Response(status=500 if request.match_info["kind"] == "fail" else 204)

    async def next(self, name: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT_SEC):
            call = await self.calls[name].get()
        assert call["_signature_ok"], "the webhook signature does not verify"
        assert call["_delivery_header"] == str(call["delivery_id"])
        return call


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    rec = Receiver(f"http://127.0.0.1:{port}")
    app = web.Application()
    app.router.add_post("/{kind:ok|fail}/{name}", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield rec
    await runner.cleanup()


@pytest.fixture
async def node(server_factory: ServerFactory) -> Server:
    return await server_factory(roles=frozenset({"dispatcher", "cron"}), cron_tick_interval_ms=200)


async def webhook(api: Api, app_id: str, name: str, url: str) -> str:
    reply = await api.post(
        f"/api/v1/apps/{app_id}/handlers",
        json={"name": name, "kind": "webhook", "url": url, "secret": SECRET, "timeout_ms": 5000},
    )
    assert reply.status == 201, reply.raw
    handler_id: str = reply.json["id"]
    return handler_id


async def trigger(
    api: Api,
    app_id: str,
    source: str,
    handler_id: str,
    match: str | None = None,
    max_attempts: int = 5,
) -> str:
    body = {
        "name": f"on-{source}-{uuid.uuid4().hex[:6]}",
        "source": source,
        "filter": {"match": match} if match else {},
        "handler_id": handler_id,
        "max_attempts": max_attempts,
    }
    reply = await api.post(f"/api/v1/apps/{app_id}/triggers", json=body)
    assert reply.status == 201, reply.raw
    trigger_id: str = reply.json["id"]
    return trigger_id


async def wait_done(db: Conn, delivery_id: int) -> None:
    """The dispatcher marks a delivery done right after its handler succeeded."""
    async with asyncio.timeout(WAIT_SEC):
        while True:
            row = db.execute(
                "SELECT status FROM picloud.deliveries WHERE id = %s", (delivery_id,)
            ).fetchone()
            if row is not None and row["status"] == "done":
                return
            await asyncio.sleep(0.02)


async def test_dispatcher_delivers_kv_to_handler(
    node: Server, api: Api, db: Conn, receiver: Receiver
) -> None:
    app = await api.create_app("e2e-kv")
    handler = await webhook(api, app["id"], "kv-hook", f"{receiver.base_url}/ok/kv")
    trigger_id = await trigger(api, app["id"], "kv", handler, match="user:*")
    assert (await api.put(f"/api/v1/apps/{app['id']}/kv/other", json=0)).status == 201
    assert (await api.put(f"/api/v1/apps/{app['id']}/kv/user:7", json={"n": 7})).status == 201
    call = await receiver.next("kv")
    assert (call["source"], call["app_id"], call["trigger_id"]) == (
        "kv",
        app["id"],
        str(trigger_id),
    )
    assert call["event"] == {**call["event"], "type": "set", "key": "user:7", "value": {"n": 7}}
    assert call["attempt"] == 1
    await wait_done(db, call["delivery_id"])
    assert (await api.delete(f"/api/v1/apps/{app['id']}/kv/user:7")).status == 204
    call = await receiver.next("kv")
    assert (call["event"]["type"], call["event"]["key"]) == ("delete", "user:7")
    assert receiver.calls["kv"].empty(), "the key outside the filter fired the handler"


async def test_dispatcher_delivers_docs_to_handler(
    node: Server, api: Api, db: Conn, database: str
) -> None:
    # An SQL handler: it records the event in a table and NOTIFYs the test.
    db.execute("CREATE SCHEMA IF NOT EXISTS picloud_handlers")
    db.execute("CREATE TABLE picloud_handlers.seen_docs (event jsonb NOT NULL)")
    db.execute(
        "CREATE FUNCTION picloud_handlers.record_doc(event jsonb) RETURNS void "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO picloud_handlers.seen_docs VALUES (event); "
        "PERFORM pg_notify('e2e_docs', event->>'id'); END $$"
    )
    app = await api.create_app("e2e-docs")
    reply = await api.post(
        f"/api/v1/apps/{app['id']}/handlers",
        json={"name": "record", "kind": "sql", "function": "picloud_handlers.record_doc"},
    )
    assert reply.status == 201, reply.raw
    await trigger(api, app["id"], "docs", reply.json["id"], match="orders")
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as listener:
        await listener.execute("LISTEN e2e_docs")
        created = await api.post(
            f"/api/v1/apps/{app['id']}/collections/orders/docs", json={"total": 42}
        )
        assert created.status == 201
        async with asyncio.timeout(WAIT_SEC):
            notice = await anext(listener.notifies())
    assert notice.payload == created.json["id"]
    [seen] = db.execute("SELECT event FROM picloud_handlers.seen_docs").fetchall()
    assert seen["event"] == {
        **seen["event"],
        "type": "insert",
        "collection": "orders",
        "version": 1,
        "data": {"total": 42},
    }


async def test_dispatcher_delivers_files_to_handler(
    node: Server, api: Api, db: Conn, receiver: Receiver
) -> None:
    app = await api.create_app("e2e-files")
    hook = await webhook(api, app["id"], "f", f"{receiver.base_url}/ok/files")
    await trigger(api, app["id"], "files", hook)
    body = b"%PDF-1.7 not really"
    reply = await api.put(
        f"/api/v1/apps/{app['id']}/files/docs/a.pdf",
        data=body,
        headers={"Content-Type": "application/pdf"},
    )
    assert reply.status == 201
    call = await receiver.next("files")
    assert call["event"] == {
        **call["event"],
        "type": "put",
        "path": "docs/a.pdf",
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_type": "application/pdf",
    }
    await wait_done(db, call["delivery_id"])


async def test_dispatcher_delivers_cron_to_handler(
    node: Server, api: Api, db: Conn, receiver: Receiver
) -> None:
    app = await api.create_app("e2e-cron")
    hook = await webhook(api, app["id"], "c", f"{receiver.base_url}/ok/cron")
    await trigger(api, app["id"], "cron", hook)
    reply = await api.post(
        f"/api/v1/apps/{app['id']}/cron",
        json={"name": "tick", "expression": "* * * * *", "payload": {"job": "report"}},
    )
    assert reply.status == 201
    # Make the next due time now, rather than waiting for the minute to turn.
    db.execute(
        "UPDATE picloud.cron_jobs SET next_run_at = now() WHERE app_id = %s AND name = 'tick'",
        (app["id"],),
    )
    call = await receiver.next("cron")
    assert call["source"] == "cron"
    event = call["event"]
    assert (event["type"], event["job"], event["payload"]) == ("fire", "tick", {"job": "report"})
    await wait_done(db, call["delivery_id"])
    job = (await api.get(f"/api/v1/apps/{app['id']}/cron/tick")).json
    assert job["last_run_at"] is not None and job["next_run_at"] > job["last_run_at"]


async def test_dispatcher_delivers_pubsub_to_handler(
    node: Server, api: Api, db: Conn, receiver: Receiver
) -> None:
    app = await api.create_app("e2e-pubsub")
    hook = await webhook(api, app["id"], "p", f"{receiver.base_url}/ok/pubsub")
    await trigger(api, app["id"], "pubsub", hook, match="chat.*")
    topics = f"/api/v1/apps/{app['id']}/topics"
    assert (await api.post(topics, json={"name": "chat.room1"})).status == 201
    assert (await api.post(topics, json={"name": "news"})).status == 201
    assert (await api.post(f"{topics}/news/messages", json={"message": 0})).status == 201
    published = await api.post(f"{topics}/chat.room1/messages", json={"message": {"text": "hi"}})
    assert published.status == 201, published.raw
    call = await receiver.next("pubsub")
    assert call["source"] == "pubsub"
    event = call["event"]
    assert (event["type"], event["topic"], event["message"]) == (
        "publish",
        "chat.room1",
        {"text": "hi"},
    )
    assert event["message_id"] == published.json["id"]
    await wait_done(db, call["delivery_id"])
    assert receiver.calls["pubsub"].empty(), "a topic outside the filter fired the handler"


async def test_dispatcher_delivers_dead_letter_to_handler(
    node: Server, api: Api, db: Conn, receiver: Receiver
) -> None:
    app = await api.create_app("e2e-dead")
    failing = await webhook(api, app["id"], "broken", f"{receiver.base_url}/fail/broken")
    failing_trigger = await trigger(api, app["id"], "kv", failing, max_attempts=1)
    on_dead = await webhook(api, app["id"], "on-dead", f"{receiver.base_url}/ok/dead")
    await trigger(api, app["id"], "dead_letter", on_dead, match="kv")
    assert (await api.put(f"/api/v1/apps/{app['id']}/kv/job:1", json="payload")).status == 201
    # The kv handler runs and fails (HTTP 500); with one attempt allowed the delivery dies...
    failed = await receiver.next("broken")
    assert failed["event"]["key"] == "job:1"
    # ...and the dead_letter trigger's handler fires with the dead letter.
    call = await receiver.next("dead")
    assert call["source"] == "dead_letter"
    event = call["event"]
    assert (event["type"], event["source"], event["subject"]) == ("dead", "kv", "job:1")
    assert event["delivery_id"] == failed["delivery_id"]
    assert event["trigger_id"] == failing_trigger
    assert event["event"]["key"] == "job:1" and "500" in event["last_error"]
    dead = (await api.get(f"/api/v1/apps/{app['id']}/dead-letters")).json["dead_letters"]
    assert [(d["id"], d["source"]) for d in dead] == [(event["dead_letter_id"], "kv")]
    await wait_done(db, call["delivery_id"])
