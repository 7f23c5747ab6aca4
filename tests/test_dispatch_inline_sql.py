"""picloud.claim_deliveries with run_within_ms: SQL handlers run inside the claim, and the
dispatcher that uses it (falling back to leased runs when the claim runs into its
timeout)."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from picloud.db import Row
from picloud.dispatcher import Claimed, Dispatcher
from picloud.dispatcher.handlers import run_sql_batch
from picloud.settings import Settings
from tests.fix_db import make_app
from tests.test_dispatcher import (
    attempt_rows,
    batch_handlers,
    enqueue,
    one,
    seen_keys,
    sql_handler,
    trigger,
    wait_status,
    webhook,
)
from tests.test_sql_outbox_dispatch import claim
from tests.threads import run_threads

Conn = psycopg.Connection[Row]


def claim_and_run(
    conn: Conn,
    max: int = 10,
    max_leased: int = 10,
    within_ms: int | None = 1000,
    timeout_ms: int = 1000,
) -> list[Row]:
    """One call in a transaction of its own, under statement_timeout = timeout_ms."""
    with conn.transaction():
        conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        return conn.execute(
            "SELECT * FROM picloud.claim_deliveries('w', %s, '1 min', %s, %s)",
            (max, within_ms, max_leased),
        ).fetchall()


def enqueue_keys(db: Conn, app_id: Any, keys: list[str], prefix: str = "") -> dict[str, int]:
    """kv events on subjects prefix + key; delivery ids by key (of every delivery so far)."""
    for key in keys:
        enqueue(db, app_id, "kv", prefix + key, {"type": "set", "key": key})
    rows = db.execute("SELECT id, event->>'key' AS key FROM picloud.deliveries").fetchall()
    return {r["key"]: r["id"] for r in rows}


def states(db: Conn) -> dict[str, tuple[str, int, str | None]]:
    rows = db.execute(
        "SELECT event->>'key' AS key, status, attempts, lease_owner FROM picloud.deliveries"
    )
    return {r["key"]: (r["status"], r["attempts"], r["lease_owner"]) for r in rows}


def test_sql_handlers_run_in_the_claim_and_the_rest_is_leased(db: Conn) -> None:
    batch_handlers(db)
    app_id = make_app(db)
    rec = sql_handler(db, app_id, "rec", "picloud_handlers.record")
    short = sql_handler(db, app_id, "short", "picloud_handlers.record", timeout_ms=300)
    trigger(db, app_id, "rec", "kv", rec, match="rec:*")
    trigger(db, app_id, "short", "kv", short, match="short:*")
    trigger(db, app_id, "hook", "kv", webhook(db, app_id, "h", "http://127.0.0.1:9/"), "hook:*")
    enqueue_keys(db, app_id, ["a", "bad", "b"], "rec:")
    enqueue_keys(db, app_id, ["hook"], "hook:")
    ids = enqueue_keys(db, app_id, ["short"], "short:")

    rows = claim_and_run(db)

    got = {r["id"]: (r["outcome"], r["error"], r["handler_kind"]) for r in rows}
    assert got == {
        ids["a"]: ("ok", None, "sql"),
        ids["b"]: ("ok", None, "sql"),
        ids["bad"]: ("retry", "P0001: no bad", "sql"),
        ids["hook"]: (None, None, "webhook"),
        ids["short"]: (None, None, "sql"),  # its timeout is shorter than the claim's
    }
    leased = {r["id"]: r for r in rows if r["outcome"] is None}
    assert leased[ids["hook"]]["event"] == {"type": "set", "key": "hook"}
    assert leased[ids["hook"]]["url"] == "http://127.0.0.1:9/"
    # The group of a, bad, b rolled back when 'bad' raised; then each ran alone once.
    assert seen_keys(db) == ["a", "b"]
    assert states(db) == {
        "a": ("done", 1, None),
        "b": ("done", 1, None),
        "bad": ("pending", 1, None),
        "hook": ("running", 1, "w"),
        "short": ("running", 1, "w"),
    }
    assert attempt_rows(db, ids["a"]) == [(1, "ok", None)]
    assert attempt_rows(db, ids["bad"]) == [(1, "error", "P0001: no bad")]
    assert attempt_rows(db, ids["hook"]) == [(1, None, None)]
    timing = db.execute(
        "SELECT a.started_at, a.finished_at, d.finished_at AS done_at FROM"
        " picloud.delivery_attempts a JOIN picloud.deliveries d ON d.id = a.delivery_id"
        " WHERE d.id = %s",
        (ids["a"],),
    ).fetchone()
    assert timing is not None
    assert timing["started_at"] < timing["finished_at"] == timing["done_at"], (
        "the attempt spans the handler run"
    )


def test_only_max_leased_are_leased_and_the_rest_stays_due(db: Conn) -> None:
    app_id = make_app(db)
    trigger(db, app_id, "hook", "kv", webhook(db, app_id, "h", "http://127.0.0.1:9/"))
    enqueue_keys(db, app_id, ["k1", "k2", "k3"])
    rows = claim_and_run(db, max_leased=1)
    assert [r["subject"] for r in rows] == ["k1"]
    due = ("pending", 0, None)
    assert states(db) == {"k1": ("running", 1, "w"), "k2": due, "k3": due}
    assert one(db, "SELECT count(*) FROM picloud.delivery_attempts") == 1


@pytest.mark.parametrize(
    ("timeout_ms", "within_ms", "max_leased", "message"),
    [
        (0, 1000, 1, "statement_timeout"),
        (2000, 1000, 1, "statement_timeout"),
        (1000, 0, 1, "run_within_ms"),
        (1000, 1000, 11, "max_leased"),
        (1000, 1000, -1, "max_leased"),
    ],
)
def test_claim_and_run_refuses_bad_arguments(
    db: Conn, timeout_ms: int, within_ms: int | None, max_leased: int, message: str
) -> None:
    with pytest.raises(errors.InvalidParameterValue, match=message):
        claim_and_run(db, max_leased=max_leased, within_ms=within_ms, timeout_ms=timeout_ms)


def test_a_claim_that_times_out_claims_nothing(db: Conn) -> None:
    batch_handlers(db)
    app_id = make_app(db)
    trigger(db, app_id, "rec", "kv", sql_handler(db, app_id, "rec", "picloud_handlers.record"))
    enqueue_keys(db, app_id, ["a", "slow", "b"])
    with pytest.raises(errors.QueryCanceled):
        claim_and_run(db, within_ms=200, timeout_ms=200)
    assert seen_keys(db) == []
    assert states(db) == {s: ("pending", 0, None) for s in ("a", "slow", "b")}
    assert one(db, "SELECT count(*) FROM picloud.delivery_attempts") == 0


def test_concurrent_claims_run_each_delivery_once(db: Conn, database: str) -> None:
    batch_handlers(db)
    app_id = make_app(db)
    trigger(db, app_id, "rec", "kv", sql_handler(db, app_id, "rec", "picloud_handlers.record"))
    keys = [f"k{i:03}" for i in range(300)]
    enqueue_keys(db, app_id, keys)

    def claimer(_: int) -> None:
        with psycopg.connect(database, autocommit=True, row_factory=dict_row) as conn:
            while claim_and_run(conn, max=7, max_leased=0):
                pass

    run_threads(claimer, range(4))
    assert seen_keys(db) == keys, "every handler ran exactly once"
    assert set(states(db).values()) == {("done", 1, None)}


async def test_dispatcher_runs_a_timed_out_claim_again_with_leases(db: Conn, database: str) -> None:
    """A handler slower than the claim's timeout (a quarter of a 2 s lease) but within its
    own: the claim is abandoned, and the leased run completes it; every handler once."""
    batch_handlers(db)
    db.execute(
        "CREATE FUNCTION picloud_handlers.nap(event jsonb) RETURNS void LANGUAGE sql AS"
        " 'INSERT INTO picloud_handlers.seen VALUES (event->>''key''); SELECT pg_sleep(0.8)'"
    )
    app_id = make_app(db)
    rec = sql_handler(db, app_id, "rec", "picloud_handlers.record", timeout_ms=3000)
    nap = sql_handler(db, app_id, "nap", "picloud_handlers.nap", timeout_ms=3000)
    trigger(db, app_id, "rec", "kv", rec, match="rec:*")
    trigger(db, app_id, "nap", "kv", nap, match="nap:*")
    enqueue_keys(db, app_id, ["a"], "rec:")
    enqueue_keys(db, app_id, ["nap"], "nap:")
    ids = enqueue_keys(db, app_id, ["b"], "rec:")
    settings = Settings(database_url=database, dispatch_lease_sec=2, dispatch_poll_ms=100)
    dispatcher = Dispatcher(settings, database, "node")
    assert dispatcher.run_within_ms == 500
    stopping = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stopping))
    try:
        for delivery_id in ids.values():
            await wait_status(database, delivery_id, "done")
    finally:
        stopping.set()
        await task
    assert seen_keys(db) == ["a", "b", "nap"], "the abandoned claim left nothing"
    assert all(attempt_rows(db, i) == [(1, "ok", None)] for i in ids.values())


async def test_a_retry_runs_when_due_not_at_the_next_poll(db: Conn, database: str) -> None:
    """Backoff of 50-100 ms and a 30 s polling interval: after each failure the dispatcher
    sleeps until the retry is due, so three attempts take well under the interval."""
    db.execute("CREATE SCHEMA picloud_handlers")
    db.execute("CREATE TABLE picloud_handlers.calls (n int)")
    db.execute(
        "CREATE FUNCTION picloud_handlers.fail_twice(event jsonb) RETURNS void LANGUAGE plpgsql"
        " AS $$ BEGIN IF (SELECT count(*) FROM picloud_handlers.calls) < 2 THEN"
        " RAISE EXCEPTION 'not yet'; END IF; END $$"
    )
    app_id = make_app(db)
    handler = sql_handler(db, app_id, "flaky", "picloud_handlers.fail_twice")
    trigger(db, app_id, "flaky", "kv", handler, attempts=5)
    # Each failed attempt is counted outside the handler's rolled-back work.
    db.execute(
        "CREATE FUNCTION picloud_handlers.count_failures() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN IF NEW.outcome = 'error' THEN INSERT INTO picloud_handlers.calls VALUES (1);"
        " END IF; RETURN NEW; END $$"
    )
    db.execute(
        "CREATE TRIGGER count_failures AFTER INSERT OR UPDATE ON picloud.delivery_attempts"
        " FOR EACH ROW EXECUTE FUNCTION picloud_handlers.count_failures()"
    )
    ids = enqueue_keys(db, app_id, ["k"])
    settings = Settings(
        database_url=database,
        dispatch_poll_ms=30000,
        dispatch_backoff_base_ms=50,
        dispatch_backoff_cap_ms=100,
    )
    stopping = asyncio.Event()
    task = asyncio.create_task(Dispatcher(settings, database, "node").run(stopping))
    try:
        await wait_status(database, ids["k"], "done", within=10)
    finally:
        stopping.set()
        await task
    assert attempt_rows(db, ids["k"]) == [
        (1, "error", "P0001: not yet"),
        (2, "error", "P0001: not yet"),
        (3, "ok", None),
    ]


async def test_a_handler_outside_the_allowed_schemas_fails_on_every_path(
    db: Conn, database: str
) -> None:
    """The allowed schemas may shrink after a handler was registered: inside a claim and
    leased (picloud.run_sql_deliveries), the run is refused by the same check."""
    batch_handlers(db)
    app_id = make_app(db)
    trigger(db, app_id, "rec", "kv", sql_handler(db, app_id, "rec", "picloud_handlers.record"))
    ids = enqueue_keys(db, app_id, ["inline", "alone"])
    refused = "22023: SQL handlers must live in one of the schemas other"
    db.execute("SET picloud.sql_handler_schemas = 'other'")

    rows = claim_and_run(db, max=1, max_leased=1)
    assert [(r["id"], r["outcome"]) for r in rows] == [(ids["inline"], "retry")]
    assert rows[0]["attempt"] == 1, "a failure inside the claim names its attempt"
    assert rows[0]["error"].startswith(refused)

    claimed = [Claimed.from_row(r) for r in claim(db, "w2")]
    assert [d.id for d in claimed] == [ids["alone"]]
    async with AsyncConnectionPool(
        database,
        kwargs={
            "autocommit": True,
            "row_factory": dict_row,
            "options": "-c picloud.sql_handler_schemas=other",
        },
        open=False,
    ) as pool:
        outcomes = await run_sql_batch(pool, claimed, "w2", 1000)
    failure = outcomes[ids["alone"]]
    assert failure.outcome == "retry" and str(failure.error).startswith(refused)
    assert seen_keys(db) == []
