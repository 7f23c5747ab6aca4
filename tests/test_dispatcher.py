"""The dispatcher end to end: a real server's dispatcher role, a loopback webhook
receiver that checks signatures, SQL handlers, retries, dead letters and their fan-out."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from picloud.db import Row, session_settings
from picloud.dispatcher import Claimed, Dispatcher, signature
from picloud.dispatcher.handlers import run_sql_batch
from picloud.dispatcher.runner import Completer
from picloud.settings import Settings, SettingsError, load_settings
from tests.fix_db import make_app
from tests.fix_server import ServerFactory, free_port

Conn = psycopg.Connection[Row]

FAST = {
    "dispatch_poll_ms": 200,
    "dispatch_backoff_base_ms": 20,
    "dispatch_backoff_cap_ms": 100,
    "roles": frozenset({"dispatcher"}),
}


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """A loopback webhook endpoint: records every request; answers with ``status[path]``
    (200 by default); ``hold[path]`` makes it wait for that event before answering."""

    url: str = ""
    hits: dict[str, asyncio.Queue[Hit]] = field(default_factory=lambda: defaultdict(asyncio.Queue))
    log: list[Hit] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    hold: dict[str, asyncio.Event] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        hit = Hit(request.path, dict(request.headers), await request.read(), time.monotonic())
        self.log.append(hit)
        self.hits[request.path].put_nowait(hit)
        if request.path in self.hold:
            await self.hold[request.path].wait()
        if request.path in self.delay:
            await asyncio.sleep(self.delay[request.path])
        return web.Response(status=self.status.get(request.path, 200), text="handled")

    async def next(self, path: str, within: float = 10.0) -> Hit:
        return await asyncio.wait_for(self.hits[path].get(), within)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    for event in rec.hold.values():
        event.set()
    await runner.cleanup()


def one(db: Conn, sql: str, *params: Any) -> Any:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return next(iter(row.values()))


def webhook(db: Conn, app_id: Any, name: str, url: str, **kw: Any) -> Any:
    return one(
        db,
        "INSERT INTO picloud.handlers (app_id, name, kind, url, secret, timeout_ms)"
        " VALUES (%s, %s, 'webhook', %s, %s, %s) RETURNING id",
        app_id,
        name,
        url,
        kw.get("secret", "s3cret-s3cret-s3cret"),
        kw.get("timeout_ms", 5000),
    )


def sql_handler(db: Conn, app_id: Any, name: str, function: str, timeout_ms: int = 5000) -> Any:
    return one(
        db,
        "INSERT INTO picloud.handlers (app_id, name, kind, function, timeout_ms)"
        " VALUES (%s, %s, 'sql', %s, %s) RETURNING id",
        app_id,
        name,
        function,
        timeout_ms,
    )


def trigger(
    db: Conn, app_id: Any, name: str, source: str, handler: Any, match: str = "*", attempts: int = 3
) -> Any:
    return one(
        db,
        "INSERT INTO picloud.triggers (app_id, name, source, filter, handler_id, max_attempts)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        app_id,
        name,
        source,
        Jsonb({"match": match}),
        handler,
        attempts,
    )


def enqueue(db: Conn, app_id: Any, source: str, subject: str, event: dict[str, Any]) -> int:
    n: int = one(
        db, "SELECT picloud.enqueue_event(%s, %s, %s, %s)", app_id, source, subject, Jsonb(event)
    )
    return n


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(0.02)


def delivery_status(database: str, delivery_id: int) -> Callable[[], Awaitable[str | None]]:
    async def check() -> str | None:
        async with await psycopg.AsyncConnection.connect(database, row_factory=dict_row) as conn:
            row = await (
                await conn.execute(
                    "SELECT status FROM picloud.deliveries WHERE id = %s", (delivery_id,)
                )
            ).fetchone()
        return None if row is None else str(row["status"])

    return check


async def wait_status(database: str, delivery_id: int, status: str, within: float = 10) -> None:
    check = delivery_status(database, delivery_id)

    async def is_status() -> bool:
        return await check() == status

    await eventually(is_status, within)


def verify_signature(secret: str, hit: Hit) -> None:
    header = hit.headers["PiCloud-Signature"]
    parts = dict(p.split("=", 1) for p in header.split(","))
    assert set(parts) == {"t", "v1"}
    assert abs(int(parts["t"]) - time.time()) < 60
    expected = hmac.new(
        secret.encode(), parts["t"].encode() + b"." + hit.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)


async def test_webhook_gets_signed_requests(
    server_factory: ServerFactory, db: Conn, database: str, receiver: Receiver
) -> None:
    app_id = make_app(db)
    hook = webhook(db, app_id, "hook", receiver.url + "/hook", secret="topsecret-topsecret")
    trig = trigger(db, app_id, "on-kv", "kv", hook, "user:*")
    await server_factory(**FAST)
    assert enqueue(db, app_id, "kv", "user:1", {"type": "set", "key": "user:1"}) == 1
    delivery_id = one(db, "SELECT id FROM picloud.deliveries")

    hit = await receiver.next("/hook")
    verify_signature("topsecret-topsecret", hit)
    with pytest.raises(AssertionError):
        verify_signature("another-secret-entirely", hit)
    assert hit.headers["PiCloud-Delivery-Id"] == str(delivery_id)
    assert hit.headers["Content-Type"] == "application/json"
    assert hit.json == {
        "delivery_id": delivery_id,
        "app_id": str(app_id),
        "trigger_id": str(trig),
        "source": "kv",
        "event": {"type": "set", "key": "user:1"},
        "attempt": 1,
    }
    await wait_status(database, delivery_id, "done")
    attempts = db.execute("SELECT outcome FROM picloud.delivery_attempts").fetchall()
    assert attempts == [{"outcome": "ok"}]


async def test_sql_handler_runs_and_times_out(
    server_factory: ServerFactory, db: Conn, database: str
) -> None:
    db.execute("CREATE SCHEMA picloud_handlers")
    db.execute("CREATE TABLE picloud_handlers.seen (event jsonb)")
    db.execute(
        "CREATE FUNCTION picloud_handlers.record(event jsonb) RETURNS void LANGUAGE sql"
        " AS 'INSERT INTO picloud_handlers.seen VALUES (event)'"
    )
    db.execute(
        "CREATE FUNCTION picloud_handlers.slow(event jsonb) RETURNS void LANGUAGE sql"
        " AS 'INSERT INTO picloud_handlers.seen VALUES (event); SELECT pg_sleep(5)'"
    )
    app_id = make_app(db)
    trigger(db, app_id, "rec", "docs", sql_handler(db, app_id, "rec", "picloud_handlers.record"))
    trigger(
        db,
        app_id,
        "slow",
        "cron",
        sql_handler(db, app_id, "slow", "picloud_handlers.slow", timeout_ms=100),
        attempts=1,
    )
    await server_factory(**FAST)
    enqueue(db, app_id, "docs", "notes", {"type": "insert", "id": "n1"})
    enqueue(db, app_id, "cron", "nightly", {"type": "fire"})
    ok = one(db, "SELECT id FROM picloud.deliveries WHERE source = 'docs'")
    slow = one(db, "SELECT id FROM picloud.deliveries WHERE source = 'cron'")
    await wait_status(database, ok, "done")
    await wait_status(database, slow, "dead")
    seen = db.execute("SELECT event FROM picloud_handlers.seen").fetchall()
    assert seen == [{"event": {"type": "insert", "id": "n1"}}], "the timed-out call rolled back"
    error = one(db, "SELECT error FROM picloud.delivery_attempts WHERE delivery_id = %s", slow)
    assert "timed out" in error


async def test_failing_handler_retried_then_dead_lettered_and_alarm_fires(
    server_factory: ServerFactory, db: Conn, database: str, receiver: Receiver
) -> None:
    receiver.status["/fail"] = 503
    app_id = make_app(db)
    failing = webhook(db, app_id, "failing", receiver.url + "/fail")
    alarm = webhook(db, app_id, "alarm", receiver.url + "/alarm")
    trig = trigger(db, app_id, "orders", "pubsub", failing, "orders", attempts=3)
    trigger(db, app_id, "on-dead", "dead_letter", alarm, "pubsub", attempts=2)
    await server_factory(**FAST)
    enqueue(db, app_id, "pubsub", "orders", {"type": "publish", "topic": "orders"})

    tries = [await receiver.next("/fail") for _ in range(3)]
    assert [t.json["attempt"] for t in tries] == [1, 2, 3]
    assert tries[1].received_at > tries[0].received_at
    fired = await receiver.next("/alarm")
    event = fired.json["event"]
    assert fired.json["source"] == "dead_letter"
    assert event["type"] == "dead" and event["attempts"] == 3
    assert event["trigger_id"] == str(trig) and event["source"] == "pubsub"
    assert event["subject"] == "orders" and event["last_error"].startswith("HTTP 503")
    assert event["event"] == {"type": "publish", "topic": "orders"}
    dead = db.execute("SELECT * FROM picloud.dead_letters").fetchall()
    assert len(dead) == 1 and dead[0]["id"] == event["dead_letter_id"]
    errors = db.execute(
        "SELECT attempt, outcome, error FROM picloud.delivery_attempts"
        " WHERE delivery_id = %s ORDER BY attempt",
        (dead[0]["delivery_id"],),
    ).fetchall()
    assert [(e["attempt"], e["outcome"]) for e in errors] == [
        (1, "error"),
        (2, "error"),
        (3, "error"),
    ]
    assert all(e["error"] == "HTTP 503: handled" for e in errors)
    assert receiver.hits["/fail"].empty()

    # Retrying the dead letter runs the handler again; this time it succeeds.
    receiver.status["/fail"] = 200
    new_id = one(db, "SELECT picloud.retry_dead_letter(%s)", dead[0]["id"])
    again = await receiver.next("/fail")
    assert again.json["delivery_id"] == new_id and again.json["attempt"] == 1
    await wait_status(database, new_id, "done")


def test_dispatch_settings() -> None:
    defaults = load_settings({})
    assert (defaults.dispatch_concurrency, defaults.dispatch_poll_ms) == (32, 1000)
    assert (defaults.dispatch_backoff_base_ms, defaults.dispatch_backoff_cap_ms) == (1000, 3600000)
    assert defaults.dispatch_retention_sec == 7 * 86400
    s = load_settings(
        {
            "PICLOUD_DISPATCH_CONCURRENCY": "4",
            "PICLOUD_DISPATCH_POLL_MS": "250",
            "PICLOUD_DISPATCH_BACKOFF_BASE_MS": "0",
            "PICLOUD_DISPATCH_BACKOFF_CAP_MS": "5000",
            "PICLOUD_DISPATCH_RETENTION_SEC": "60",
        }
    )
    assert (s.dispatch_concurrency, s.dispatch_poll_ms, s.dispatch_retention_sec) == (4, 250, 60)
    assert (s.dispatch_backoff_base_ms, s.dispatch_backoff_cap_ms) == (0, 5000)
    session = session_settings(s)
    assert session["picloud.dispatch_backoff_base_ms"] == "0"
    assert session["picloud.dispatch_backoff_cap_ms"] == "5000"
    for name, bad in (
        ("PICLOUD_DISPATCH_CONCURRENCY", "0"),
        ("PICLOUD_DISPATCH_POLL_MS", "fast"),
        ("PICLOUD_DISPATCH_BACKOFF_BASE_MS", "-1"),
        ("PICLOUD_DISPATCH_BACKOFF_CAP_MS", "1.5"),
        ("PICLOUD_DISPATCH_RETENTION_SEC", "0"),
    ):
        with pytest.raises(SettingsError, match=name):
            load_settings({name: bad})


def test_signature_header_format() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"key", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("key", body, 1700000000) == f"t=1700000000,v1={expected}"


async def test_grouped_sql_runs_isolate_failures_and_lost_leases(db: Conn, database: str) -> None:
    db.execute("CREATE SCHEMA picloud_handlers")
    db.execute("CREATE TABLE picloud_handlers.seen (k text)")
    db.execute(
        "CREATE FUNCTION picloud_handlers.record(event jsonb) RETURNS void LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO picloud_handlers.seen VALUES (event->>'key');"
        " IF event->>'key' = 'bad' THEN RAISE EXCEPTION 'no %', event->>'key'; END IF; END $$"
    )
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", sql_handler(db, app_id, "rec", "picloud_handlers.record"))
    keys = ["a", "bad", "b", "stolen", "c", "'; DROP TABLE picloud_handlers.seen; --"]
    for key in keys:
        enqueue(db, app_id, "kv", key, {"type": "set", "key": key})
    rows = db.execute(
        "SELECT * FROM picloud.claim_deliveries('w', 10, '1 min') ORDER BY id"
    ).fetchall()
    by_key = {r["event"]["key"]: Claimed.from_row(r) for r in rows}
    db.execute(
        "UPDATE picloud.deliveries SET lease_owner = 'thief' WHERE id = %s", (by_key["stolen"].id,)
    )
    async with AsyncConnectionPool(
        database, kwargs={"autocommit": True, "row_factory": dict_row}, open=False
    ) as pool:
        outcomes = await run_sql_batch(pool, [by_key[k] for k in keys], "w", 1000)
    got = {k: outcomes[by_key[k].id] for k in keys}
    assert {got[k].outcome for k in ("a", "b", "c", keys[-1])} == {"ok"}
    assert got["stolen"].outcome == "stale"
    assert got["bad"].outcome == "retry" and "no bad" in str(got["bad"].error)
    seen = sorted(r["k"] for r in db.execute("SELECT k FROM picloud_handlers.seen").fetchall())
    assert seen == sorted(["a", "b", "c", keys[-1]]), "failed and stale runs rolled back"
    done = db.execute("SELECT subject FROM picloud.deliveries WHERE status = 'done'").fetchall()
    assert sorted(r["subject"] for r in done) == sorted(["a", "b", "c", keys[-1]])


def batch_handlers(db: Conn) -> None:
    """picloud_handlers.record: notes the event's key, raises for 'bad', sleeps for 'slow'."""
    db.execute("CREATE SCHEMA picloud_handlers")
    db.execute("CREATE TABLE picloud_handlers.seen (k text)")
    db.execute(
        "CREATE FUNCTION picloud_handlers.record(event jsonb) RETURNS void LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO picloud_handlers.seen VALUES (event->>'key');"
        " IF event->>'key' = 'bad' THEN RAISE EXCEPTION 'no %', event->>'key'; END IF;"
        " IF event->>'key' LIKE 'slow%' THEN PERFORM pg_sleep(5); END IF; END $$"
    )


def claim_keys(db: Conn, app_id: Any, keys: list[str], lease: str = "1 min") -> dict[str, int]:
    for key in keys:
        enqueue(db, app_id, "kv", key, {"type": "set", "key": key})
    rows = db.execute(
        "SELECT id, event FROM picloud.claim_deliveries('w', 50, %s::interval) ORDER BY id",
        (lease,),
    ).fetchall()
    return {r["event"]["key"]: r["id"] for r in rows}


def seen_keys(db: Conn) -> list[str]:
    return sorted(r["k"] for r in db.execute("SELECT k FROM picloud_handlers.seen").fetchall())


def attempt_rows(db: Conn, delivery_id: int) -> list[tuple[int, str | None, str | None]]:
    rows = db.execute(
        "SELECT attempt, outcome, error FROM picloud.delivery_attempts"
        " WHERE delivery_id = %s ORDER BY attempt",
        (delivery_id,),
    ).fetchall()
    return [(r["attempt"], r["outcome"], r["error"]) for r in rows]


def test_sql_batch_isolates_a_failing_handler_and_refuses_a_lost_lease(db: Conn) -> None:
    batch_handlers(db)
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", sql_handler(db, app_id, "rec", "picloud_handlers.record"))
    keys = ["a", "bad", "b", "stolen", "c"]
    ids = claim_keys(db, app_id, keys)
    db.execute(
        "UPDATE picloud.deliveries SET lease_owner = 'thief' WHERE id = %s", (ids["stolen"],)
    )
    rows = db.execute(
        "SELECT id, outcome, error FROM picloud.run_sql_deliveries("
        " array_fill(%s::uuid, ARRAY[%s]), %s, 'w')",
        (app_id, len(keys), [ids[k] for k in keys]),
    ).fetchall()
    got = {r["id"]: (r["outcome"], r["error"]) for r in rows}
    assert got == {
        ids["a"]: ("ok", None),
        ids["bad"]: ("retry", "P0001: no bad"),
        ids["b"]: ("ok", None),
        ids["stolen"]: ("stale", None),
        ids["c"]: ("ok", None),
    }
    assert seen_keys(db) == ["a", "b", "c"], "the failed handler rolled back alone"
    status = {
        r["subject"]: (r["status"], r["lease_owner"])
        for r in db.execute("SELECT subject, status, lease_owner FROM picloud.deliveries")
    }
    assert status == {
        "a": ("done", None),
        "b": ("done", None),
        "c": ("done", None),
        "bad": ("pending", None),
        "stolen": ("running", "thief"),
    }
    assert attempt_rows(db, ids["a"]) == [(1, "ok", None)]
    assert attempt_rows(db, ids["bad"]) == [(1, "error", "P0001: no bad")]
    assert attempt_rows(db, ids["stolen"]) == [(1, None, None)], "the thief's to finish"


def test_sql_batch_holds_all_its_leases_while_it_runs(db: Conn, database: str) -> None:
    batch_handlers(db)
    db.execute(
        "CREATE FUNCTION picloud_handlers.pause(event jsonb) RETURNS void LANGUAGE sql"
        " AS 'INSERT INTO picloud_handlers.seen VALUES (event->>''key''); SELECT pg_sleep(0.5)'"
    )
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", sql_handler(db, app_id, "p", "picloud_handlers.pause"))
    ids = claim_keys(db, app_id, ["first", "later"], lease="100 ms")
    result: list[Row] = []

    def run_batch() -> None:
        with psycopg.connect(database, autocommit=True, row_factory=dict_row) as conn:
            conn.execute("SET application_name = 'the-batch'")
            result.extend(
                conn.execute(
                    "SELECT id, outcome FROM picloud.run_sql_deliveries("
                    " array_fill(%s::uuid, ARRAY[2]), %s, 'w')",
                    (app_id, [ids["first"], ids["later"]]),
                ).fetchall()
            )

    thread = threading.Thread(target=run_batch)
    thread.start()
    deadline = time.monotonic() + 10
    while not one(  # wait for the first handler to be running, and both leases to run out
        db,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'the-batch' AND wait_event = 'PgSleep'"
        " AND NOT EXISTS (SELECT FROM picloud.deliveries WHERE lease_expires_at > now())",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # While the first handler runs, neither delivery of the batch can be taken over, though
    # their leases ran out: not the running one, nor the one still to run.
    assert one(db, "SELECT count(*) FROM picloud.claim_deliveries('other', 10, '1 min')") == 0
    with psycopg.connect(database, autocommit=True) as thief:
        thief.execute("SET lock_timeout = '50ms'")
        for key in ("first", "later"):
            with pytest.raises(psycopg.errors.LockNotAvailable):
                thief.execute(
                    "UPDATE picloud.deliveries SET lease_owner = 'thief' WHERE id = %s",
                    (ids[key],),
                )
    thread.join(20)
    assert {r["id"]: r["outcome"] for r in result} == {ids["first"]: "ok", ids["later"]: "ok"}
    assert seen_keys(db) == ["first", "later"]


def test_sql_batch_timeout_aborts_the_whole_batch(db: Conn, database: str) -> None:
    batch_handlers(db)
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", sql_handler(db, app_id, "rec", "picloud_handlers.record"))
    ids = claim_keys(db, app_id, ["a", "slow", "b"])
    with psycopg.connect(database) as conn:
        conn.execute("SET LOCAL statement_timeout = 200")
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(
                "SELECT * FROM picloud.run_sql_deliveries(array_fill(%s::uuid, ARRAY[3]), %s, 'w')",
                (app_id, list(ids.values())),
            )
        conn.rollback()
    assert seen_keys(db) == []
    rows = db.execute("SELECT status, lease_owner FROM picloud.deliveries").fetchall()
    assert rows == [{"status": "running", "lease_owner": "w"}] * 3, "nothing recorded"
    assert all(attempt_rows(db, i) == [(1, None, None)] for i in ids.values())


async def test_a_timed_out_batch_runs_again_one_by_one(db: Conn, database: str) -> None:
    batch_handlers(db)
    app_id = make_app(db)
    fast = sql_handler(db, app_id, "rec", "picloud_handlers.record")
    slow = sql_handler(db, app_id, "slow", "picloud_handlers.record", timeout_ms=300)
    trigger(db, app_id, "t", "kv", fast, match="fast:*")
    trigger(db, app_id, "s", "kv", slow, match="slow:*")
    for key in ("a", "bad", "slow", "b"):
        subject = ("slow:" if key == "slow" else "fast:") + key
        enqueue(db, app_id, "kv", subject, {"type": "set", "key": key})
    settings = Settings(database_url=database)
    dispatcher = Dispatcher(settings, database, "node")
    rows = db.execute("SELECT * FROM picloud.claim_deliveries('node#1', 10, '1 min')").fetchall()
    claimed = [Claimed.from_row(r) for r in rows]
    assert len(claimed) == 4
    ids = {d.event["key"]: d.id for d in claimed}
    async with AsyncConnectionPool(
        database, kwargs={"autocommit": True, "row_factory": dict_row}, open=False
    ) as pool:
        dispatcher.pool = pool
        dispatcher.completer = Completer(pool)
        started = time.monotonic()
        await dispatcher._run_sql(claimed, "node#1")
        assert time.monotonic() - started < 3, "the slow handler was cut at its timeout"
    assert seen_keys(db) == ["a", "b"], "one run each that committed; the batch left nothing"
    assert attempt_rows(db, ids["a"]) == [(1, "ok", None)]
    assert attempt_rows(db, ids["b"]) == [(1, "ok", None)]
    assert attempt_rows(db, ids["bad"]) == [(1, "error", "P0001: no bad")]
    assert attempt_rows(db, ids["slow"]) == [(1, "error", "timed out after 300 ms")]


async def test_batched_completions_refuse_lost_leases(db: Conn, database: str) -> None:
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", webhook(db, app_id, "h", "http://127.0.0.1:9/"), attempts=2)
    for key in ("a", "b", "c", "d", "e", "f"):
        enqueue(db, app_id, "kv", key, {"type": "set"})
    ids = [r["id"] for r in db.execute("SELECT id FROM picloud.claim_deliveries('w', 9, '1 min')")]
    a, b, c, d, e, f = ids
    db.execute("UPDATE picloud.deliveries SET lease_owner = 'thief' WHERE id IN (%s, %s)", (b, e))
    db.execute("UPDATE picloud.deliveries SET max_attempts = 1 WHERE id = %s", (f,))  # its last
    async with AsyncConnectionPool(
        database, kwargs={"autocommit": True, "row_factory": dict_row}, open=False
    ) as pool:
        completer = Completer(pool)
        results = await asyncio.gather(
            completer.complete(app_id, a, "w"),
            completer.complete(app_id, b, "w"),
            completer.complete(app_id, c, "w"),
            completer.fail(app_id, d, "w", "HTTP 500: no"),
            completer.fail(app_id, e, "w", "HTTP 500: no"),
            completer.fail(app_id, f, "w", "HTTP 500: no"),
        )
        assert results == [True, False, True, "retry", "stale", "dead"]
        assert await completer.complete(app_id, a, "w") is False, "already done"
    status = db.execute("SELECT id, status, lease_owner FROM picloud.deliveries ORDER BY id")
    assert [(r["status"], r["lease_owner"]) for r in status.fetchall()] == [
        ("done", None),
        ("running", "thief"),
        ("done", None),
        ("pending", None),
        ("running", "thief"),
        ("dead", None),
    ]
    errors = db.execute(
        "SELECT delivery_id, outcome, error FROM picloud.delivery_attempts ORDER BY delivery_id"
    ).fetchall()
    assert [(r["outcome"], r["error"]) for r in errors] == [
        ("ok", None),
        (None, None),
        ("ok", None),
        ("error", "HTTP 500: no"),
        (None, None),
        ("error", "HTTP 500: no"),
    ]
    assert one(db, "SELECT count(*) FROM picloud.dead_letters WHERE delivery_id = %s", f) == 1


def test_a_restarted_dispatcher_role_reuses_its_metrics() -> None:
    registry = CollectorRegistry()
    settings = Settings(database_url="postgresql://unused/x")
    first = Dispatcher(settings, "postgresql://unused/x", "a", registry)
    second = Dispatcher(settings, "postgresql://unused/x", "b", registry)
    assert first.metrics is second.metrics
    first.metrics.deliveries.labels("sql", "ok").inc()
    assert (
        registry.get_sample_value(
            "picloud_dispatcher_deliveries_total", {"kind": "sql", "outcome": "ok"}
        )
        == 1.0
    )
