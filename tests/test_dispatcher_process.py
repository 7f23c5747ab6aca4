"""Dispatchers as separate workers: killed mid-delivery, several on one database,
graceful shutdown, and ``picloud dispatcher`` as a real process."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from picloud.db import Row
from picloud.dispatcher import Dispatcher
from tests.fix_db import make_app
from tests.fix_server import make_test_settings
from tests.procs import picloud_env, start_picloud, stop
from tests.test_dispatcher import (
    FAST,
    Receiver,
    enqueue,
    eventually,
    one,
    receiver,
    sql_handler,
    trigger,
    wait_status,
    webhook,
)

Conn = psycopg.Connection[Row]
__all__ = ["receiver"]  # the fixture, shared with test_dispatcher


def dispatcher_process(database: str, tmp_path: Path, name: str, lease_sec: int = 1) -> object:
    env = picloud_env(
        DATABASE_URL=database,
        PICLOUD_DATA_DIR=str(tmp_path / name),
        PICLOUD_DISPATCH_LEASE_SEC=str(lease_sec),
        PICLOUD_DISPATCH_POLL_MS="100",
        PICLOUD_DISPATCH_BACKOFF_BASE_MS="20",
        PICLOUD_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
    )
    return start_picloud(["dispatcher"], env, tmp_path, tmp_path / f"{name}.log")


async def test_sigkill_mid_delivery_loses_nothing(
    db: Conn, database: str, receiver: Receiver, tmp_path: Path
) -> None:
    app_id = make_app(db)
    hook = webhook(db, app_id, "hook", receiver.url + "/hook")
    trigger(db, app_id, "t", "kv", hook, attempts=3)
    hang = receiver.hold["/hook"] = asyncio.Event()
    first = dispatcher_process(database, tmp_path, "first")
    try:
        enqueue(db, app_id, "kv", "k", {"type": "set"})
        delivery_id = one(db, "SELECT id FROM picloud.deliveries")
        hit = await receiver.next("/hook", within=30)
        assert hit.json["attempt"] == 1
        # Killed while the webhook call is in flight: no chance to complete or release.
        assert stop(first, signal.SIGKILL) == -signal.SIGKILL  # type: ignore[arg-type]
    finally:
        stop(first, signal.SIGKILL)  # type: ignore[arg-type]
    row = db.execute(
        "SELECT status, attempts, lease_expires_at > now() AS leased FROM picloud.deliveries"
    ).fetchone()
    assert row == {"status": "running", "attempts": 1, "leased": True}

    hang.set()
    del receiver.hold["/hook"]
    second = dispatcher_process(database, tmp_path, "second")
    try:
        again = await receiver.next("/hook", within=30)
        assert again.json["delivery_id"] == delivery_id and again.json["attempt"] == 2
        await wait_status(database, delivery_id, "done", within=30)
    finally:
        # SIGTERM is a normal exit for `picloud dispatcher`.
        assert stop(second) == 0  # type: ignore[arg-type]
    outcomes = db.execute(
        "SELECT attempt, outcome FROM picloud.delivery_attempts ORDER BY attempt"
    ).fetchall()
    assert outcomes == [
        {"attempt": 1, "outcome": "lease_expired"},
        {"attempt": 2, "outcome": "ok"},
    ]


async def test_two_dispatchers_never_run_a_delivery_twice(
    db: Conn, database: str, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.delay["/hook"] = 0.005
    app_id = make_app(db)
    hook = webhook(db, app_id, "hook", receiver.url + "/hook")
    trigger(db, app_id, "t", "kv", hook)
    settings = make_test_settings(database, tmp_path, dispatch_concurrency=8, **FAST)
    stopping = asyncio.Event()
    runs = [
        asyncio.create_task(Dispatcher(settings, database, node).run(stopping))
        for node in ("node-a", "node-b")
    ]
    try:
        db.execute(
            "SELECT picloud.enqueue_event(%s, 'kv', 'k' || i, jsonb_build_object('type', 'set'))"
            " FROM generate_series(1, 300) i",
            (app_id,),
        )

        async def all_done() -> bool:
            left = one(db, "SELECT count(*) FROM picloud.deliveries WHERE status <> 'done'")
            return bool(left == 0)

        deadline = asyncio.get_running_loop().time() + 60
        while not await all_done():
            assert asyncio.get_running_loop().time() < deadline, "not drained in time"
            await asyncio.sleep(0.05)
    finally:
        stopping.set()
        await asyncio.gather(*runs)
    per_delivery = Counter(hit.json["delivery_id"] for hit in receiver.log)
    assert len(per_delivery) == 300
    assert set(per_delivery.values()) == {1}, "no delivery ran twice"
    workers = db.execute(
        "SELECT split_part(worker, '#', 1) AS node, count(*) AS n"
        " FROM picloud.delivery_attempts GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [w["node"] for w in workers] == ["node-a", "node-b"], "both took a share"
    assert sum(w["n"] for w in workers) == 300


async def test_a_held_lease_is_never_run_by_another_dispatcher(
    db: Conn, database: str, receiver: Receiver, tmp_path: Path
) -> None:
    held = receiver.hold["/hook"] = asyncio.Event()
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", webhook(db, app_id, "hook", receiver.url + "/hook"))
    trigger(db, app_id, "c", "cron", webhook(db, app_id, "other", receiver.url + "/other"))
    settings = make_test_settings(database, tmp_path, **{**FAST, "dispatch_poll_ms": 100})
    stopping = asyncio.Event()
    runs = [
        asyncio.create_task(Dispatcher(settings, database, node).run(stopping))
        for node in ("node-a", "node-b")
    ]
    try:
        enqueue(db, app_id, "kv", "k", {"type": "set"})
        first = await receiver.next("/hook")
        # For a second both keep polling (every 100 ms) and are woken to claim new work.
        for i in range(10):
            enqueue(db, app_id, "cron", f"tick{i}", {"type": "fire"})
            await receiver.next("/other")
            await asyncio.sleep(0.1)
        assert receiver.hits["/hook"].empty(), "nobody else ran the leased delivery"
        held.set()
        await wait_status(database, first.json["delivery_id"], "done")
    finally:
        held.set()
        stopping.set()
        await asyncio.gather(*runs)
    assert [hit.path for hit in receiver.log].count("/hook") == 1
    nodes = db.execute(
        "SELECT DISTINCT split_part(worker, '#', 1) AS node FROM picloud.delivery_attempts"
    ).fetchall()
    assert {n["node"] for n in nodes} == {"node-a", "node-b"}, "both were claiming meanwhile"


async def test_a_dispatcher_process_and_another_share_the_queue(
    db: Conn, database: str, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.delay["/hook"] = 0.01
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", webhook(db, app_id, "hook", receiver.url + "/hook"))
    settings = make_test_settings(database, tmp_path, dispatch_concurrency=4, **FAST)
    stopping = asyncio.Event()
    local = asyncio.create_task(Dispatcher(settings, database, "local").run(stopping))
    other = dispatcher_process(database, tmp_path, "other", lease_sec=30)
    try:

        async def both_listening() -> bool:
            n = one(
                db,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
                " AND query LIKE '%%picloud.listen(picloud.dispatch_channel())%%'",
            )
            return bool(n >= 2)

        await eventually(both_listening, within=30)
        db.execute(
            "SELECT picloud.enqueue_event(%s, 'kv', 'k' || i, jsonb_build_object('type', 'set'))"
            " FROM generate_series(1, 200) i",
            (app_id,),
        )

        async def drained() -> bool:
            left = one(db, "SELECT count(*) FROM picloud.deliveries WHERE status <> 'done'")
            return bool(left == 0)

        await eventually(drained, within=60)
    finally:
        stopping.set()
        await local
        assert stop(other) == 0  # type: ignore[arg-type]
    per_delivery = Counter(hit.json["delivery_id"] for hit in receiver.log)
    assert len(per_delivery) == 200 and set(per_delivery.values()) == {1}, "each ran once"
    shares = db.execute(
        "SELECT worker LIKE 'local#%%' AS local, count(*) AS n"
        " FROM picloud.delivery_attempts GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [s["local"] for s in shares] == [False, True], "both took a share"


async def test_shutdown_releases_unfinished_leases(
    db: Conn, database: str, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.hold["/hook"] = asyncio.Event()
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", webhook(db, app_id, "hook", receiver.url + "/hook"))
    settings = make_test_settings(database, tmp_path, **FAST)
    stopping = asyncio.Event()
    run = asyncio.create_task(
        Dispatcher(settings, database, "node-s", shutdown_grace_sec=0.1).run(stopping)
    )
    enqueue(db, app_id, "kv", "k", {"type": "set"})
    await receiver.next("/hook")
    stopping.set()
    await asyncio.wait_for(run, 10)
    row = db.execute("SELECT status, attempts, lease_owner FROM picloud.deliveries").fetchone()
    assert row == {"status": "pending", "attempts": 0, "lease_owner": None}
    assert one(db, "SELECT count(*) FROM picloud.delivery_attempts") == 0


async def test_shutdown_releases_a_running_sql_batch(
    db: Conn, database: str, tmp_path: Path
) -> None:
    db.execute("CREATE SCHEMA picloud_handlers")
    db.execute("CREATE TABLE picloud_handlers.seen (k text)")
    db.execute(
        "CREATE FUNCTION picloud_handlers.slow(event jsonb) RETURNS void LANGUAGE sql AS"
        " 'INSERT INTO picloud_handlers.seen VALUES (event->>''key''); SELECT pg_sleep(20)'"
    )
    app_id = make_app(db)
    slow = sql_handler(db, app_id, "slow", "picloud_handlers.slow", timeout_ms=20000)
    trigger(db, app_id, "t", "kv", slow)
    settings = make_test_settings(database, tmp_path, **FAST)
    stopping = asyncio.Event()
    run = asyncio.create_task(
        Dispatcher(settings, database, "node-q", shutdown_grace_sec=0.1).run(stopping)
    )
    for key in ("a", "b"):
        enqueue(db, app_id, "kv", key, {"type": "set", "key": key})

    async def sleeping() -> bool:
        row = db.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
        ).fetchone()
        return row is not None and row["n"] > 0

    await eventually(sleeping)
    stopping.set()
    await asyncio.wait_for(run, 10)  # the batch was cancelled, not waited for
    rows = db.execute("SELECT status, attempts, lease_owner FROM picloud.deliveries").fetchall()
    assert rows == [{"status": "pending", "attempts": 0, "lease_owner": None}] * 2
    assert one(db, "SELECT count(*) FROM picloud.delivery_attempts") == 0
    assert one(db, "SELECT count(*) FROM picloud_handlers.seen") == 0, "rolled back"


async def test_notify_wakes_an_idle_dispatcher_quickly(
    db: Conn, database: str, receiver: Receiver, tmp_path: Path
) -> None:
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", webhook(db, app_id, "hook", receiver.url + "/hook"))
    # Polling every 30 s: only the NOTIFY can make this fast.
    settings = make_test_settings(database, tmp_path, **{**FAST, "dispatch_poll_ms": 30000})
    stopping = asyncio.Event()
    run = asyncio.create_task(Dispatcher(settings, database, "node-n").run(stopping))
    try:
        await asyncio.sleep(0.3)  # let it go idle
        loop = asyncio.get_running_loop()
        for _ in range(3):
            sent = loop.time()
            async with await psycopg.AsyncConnection.connect(
                database, autocommit=True, row_factory=dict_row
            ) as conn:
                await conn.execute(
                    "SELECT picloud.enqueue_event(%s, 'kv', 'k', '{\"type\":\"set\"}')", (app_id,)
                )
            await receiver.next("/hook", within=5)
            assert loop.time() - sent < 2.0
    finally:
        stopping.set()
        await run


async def test_dispatcher_resumes_after_its_connections_are_killed(
    db: Conn, database: str, receiver: Receiver, tmp_path: Path
) -> None:
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", webhook(db, app_id, "hook", receiver.url + "/hook"))
    settings = make_test_settings(database, tmp_path, **FAST)
    stopping = asyncio.Event()
    run = asyncio.create_task(Dispatcher(settings, database, "node-r").run(stopping))
    try:
        enqueue(db, app_id, "kv", "before", {"type": "set"})
        await receiver.next("/hook")

        # The first delivery can be claimed before the LISTEN connection is up (the loop
        # claims at start): wait for it, so both connections are there to be killed.
        async def listening() -> bool:
            return bool(
                one(
                    db,
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid()"
                    " AND query LIKE '%%picloud.listen(picloud.dispatch_channel())%%'",
                )
            )

        await eventually(listening)
        killed = one(
            db,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        assert killed >= 2, "the LISTEN connection and the pool's"
        enqueue(db, app_id, "kv", "after", {"type": "set"})
        hit = await receiver.next("/hook", within=15)
        after = one(db, "SELECT id FROM picloud.deliveries WHERE subject = 'after'")
        assert hit.json["delivery_id"] == after
        await wait_status(database, after, "done")
    finally:
        stopping.set()
        await run
