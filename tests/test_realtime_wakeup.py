"""The publish wake-up: at most one committing publish carries the relays' NOTIFY
(sql/29_wakeups.sql, picloud.wake_on_commit); a publish that committed without one still
reaches live subscribers within the bound the README states."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from picloud.realtime import relay as relay_module
from tests.fix_db import make_app
from tests.fix_server import ServerFactory
from tests.sse_client import SseStream
from tests.test_dispatcher import eventually, sql_handler, trigger
from tests.test_realtime_sse import Realtime, rt  # noqa: F401 (fixture)

# The README's bound for a publish that committed without its own NOTIFY while another
# publish's NOTIFY was committing: read by the relay's re-sweep within a few ms of its
# commit. Asserted with headroom for a loaded machine, and far below the backstop.
RESWEEP_BOUND_SEC = 0.15


def lock_class(conn: psycopg.Connection[Any]) -> int:
    row = conn.cursor(row_factory=tuple_row).execute("SELECT picloud.wake_lock_class()").fetchone()
    assert row is not None
    return int(row[0])


def notifies(listener: psycopg.Connection[Any]) -> list[str]:
    return [n.payload for n in listener.notifies(timeout=0.3)]


def test_one_notify_per_transaction_naming_its_last_append(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as admin:
        app = admin.execute(
            "INSERT INTO picloud.apps (slug, name) VALUES ('w', 'w') RETURNING id"
        ).fetchone()
        assert app is not None
        for name in ("a", "b"):
            admin.execute("SELECT picloud.create_topic(%s, %s)", (app[0], name))
        admin.execute("LISTEN picloud_realtime")
        with psycopg.connect(database) as conn:
            conn.execute("SELECT picloud.publish(%s, 'a', '1')", (app[0],))
            conn.execute("SELECT picloud.publish_batch(%s, 'b', '[1, 2, 3]')", (app[0],))
            conn.execute("SELECT picloud.publish(%s, 'a', '2')", (app[0],))
            conn.commit()
        assert notifies(admin) == [f"{app[0]} 2 a"]
        # A savepoint rolled back takes its arming with it; the next publish re-arms.
        with psycopg.connect(database) as conn:
            conn.execute("SAVEPOINT s")
            conn.execute("SELECT picloud.publish(%s, 'b', '4')", (app[0],))
            conn.execute("ROLLBACK TO SAVEPOINT s")
            conn.execute("SELECT picloud.publish(%s, 'a', '3')", (app[0],))
            conn.commit()
        assert notifies(admin) == [f"{app[0]} 3 a"]
        # While another transaction holds the wake-up lock, a publish commits silently.
        with psycopg.connect(database, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s, 1)", (lock_class(holder),))
            admin.execute("SELECT picloud.publish(%s, 'a', '4')", (app[0],))
            assert notifies(admin) == []
            holder.execute("SELECT pg_advisory_unlock(%s, 1)", (lock_class(holder),))
        admin.execute("SELECT picloud.publish(%s, 'a', '5')", (app[0],))
        assert notifies(admin) == [f"{app[0]} 5 a"]


def test_writers_committing_reflects_the_shared_lock(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as relay:
        busy = "SELECT picloud.writers_committing('realtime')"
        assert relay.execute(busy).fetchone() == (False,)
        with psycopg.connect(database) as publisher:
            publisher.execute("SELECT pg_advisory_xact_lock_shared(%s, 2)", (lock_class(relay),))
            assert relay.execute(busy).fetchone() == (True,)
        assert relay.execute(busy).fetchone() == (False,)
        # Asking never leaves the lock held (publishers would queue on it).
        with psycopg.connect(database, autocommit=True) as other:
            assert other.execute(
                "SELECT pg_try_advisory_xact_lock(%s, 2)", (lock_class(other),)
            ).fetchone() == (True,)
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            relay.execute("SELECT picloud.writers_committing('nope')")


def _slow_commit_trigger(conn: psycopg.Connection[Any], table: str = "messages") -> None:
    """A deferred trigger that fires after messages_wake_relays (names fire in order) and
    sleeps when the session asks: a publisher slow between its wake-up decision and the
    end of its commit."""
    conn.execute(
        f"""
        CREATE OR REPLACE FUNCTION public.slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_sleep(coalesce(nullif(current_setting('test.slow_commit', true), ''),
                                      '0')::float8);
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER zz_slow_commit AFTER INSERT ON picloud.{table}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.slow_commit();
        """
    )


async def test_publish_committed_without_notify_after_the_notifier_is_delivered(
    rt: Realtime,  # noqa: F811
    database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the re-sweep may deliver it in time: the backstop is pushed out of the way.
    monkeypatch.setattr(relay_module, "BACKSTOP_SEC", 3600.0)
    await asyncio.sleep(relay_module.RESWEEP_SEC)
    await rt.topic("t")
    await rt.topic("other")
    stream = await rt.subscribe("t")
    app = rt.app["id"]
    with psycopg.connect(database, autocommit=True) as admin:
        _slow_commit_trigger(admin)
        cls = lock_class(admin)
    notifier = psycopg.connect(database)
    slow = psycopg.connect(database)
    committed: list[float] = []
    try:
        # The notifier: a publish of another topic in the middle of its commit (it holds
        # the wake-up lock and has its NOTIFY queued).
        notifier.execute("SELECT pg_advisory_xact_lock_shared(%s, 2)", (cls,))
        notifier.execute("SELECT pg_advisory_xact_lock(%s, 1)", (cls,))
        notifier.execute("SELECT pg_notify('picloud_realtime', %s)", (f"{app} 1 other",))

        def slow_publish() -> None:
            slow.execute("SET test.slow_commit = '0.4'")
            slow.execute("SELECT picloud.publish(%s, 't', '\"late\"')", (app,))
            slow.commit()  # no NOTIFY of its own (the lock is taken), then 0.4 s asleep
            committed.append(time.monotonic())

        thread = threading.Thread(target=slow_publish)
        thread.start()
        await asyncio.sleep(0.15)  # the slow publisher is now asleep inside its commit
        notifier.commit()  # wakes the relay while the slow publish is not yet visible
        assert await stream.messages(1, within=5) == [(1, "late")]
        received = time.monotonic()
        await asyncio.to_thread(thread.join, 5)
        assert committed, "the slow publish did not commit"
        assert received - committed[0] < RESWEEP_BOUND_SEC, received - committed[0]
    finally:
        notifier.close()
        slow.close()
        stream.close()


async def test_publish_no_wakeup_covers_is_delivered_by_the_backstop(
    rt: Realtime,  # noqa: F811
    database: str,
) -> None:
    await rt.topic("t")
    stream = await rt.subscribe("t")
    with psycopg.connect(database, autocommit=True) as holder:
        # Holding the wake-up lock for ever: no publish notifies (as after a notifying
        # transaction that failed at commit).
        holder.execute("SELECT pg_advisory_lock(%s, 1)", (lock_class(holder),))
        await asyncio.sleep(relay_module.RESWEEP_SEC * 10)
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("SELECT picloud.publish(%s, 't', '\"quiet\"')", (rt.app["id"],))
        started = time.monotonic()
        assert await stream.messages(1, within=5) == [(1, "quiet")]
        assert time.monotonic() - started < relay_module.BACKSTOP_SEC + 0.5
    stream.close()


async def test_enqueue_committed_without_notify_after_the_notifier_is_dispatched(
    server_factory: ServerFactory, db: Any, database: str
) -> None:
    db.execute("CREATE SCHEMA picloud_handlers")
    db.execute("CREATE TABLE picloud_handlers.seen (at timestamptz)")
    db.execute(
        "CREATE FUNCTION picloud_handlers.record(event jsonb) RETURNS void LANGUAGE sql"
        " AS 'INSERT INTO picloud_handlers.seen VALUES (clock_timestamp())'"
    )
    app_id = make_app(db)
    handler = sql_handler(db, app_id, "rec", "picloud_handlers.record")
    trigger(db, app_id, "rec", "docs", handler)
    _slow_commit_trigger(db, "deliveries")
    # Polling far out of the way: only the wake-up and its re-looks can dispatch in time.
    await server_factory(
        dispatch_poll_ms=60_000, dispatch_backoff_base_ms=20, roles=frozenset({"dispatcher"})
    )
    await asyncio.sleep(0.3)  # the dispatcher is listening
    cls = lock_class(db)
    notifier = psycopg.connect(database)
    slow = psycopg.connect(database)
    committed: list[float] = []
    try:
        notifier.execute("SELECT pg_advisory_xact_lock_shared(%s, 4)", (cls,))
        notifier.execute("SELECT pg_advisory_xact_lock(%s, 3)", (cls,))
        notifier.execute("SELECT pg_notify('picloud_dispatch', '')")

        def slow_enqueue() -> None:
            slow.execute("SET test.slow_commit = '0.4'")
            slow.execute("SELECT picloud.enqueue_event(%s, 'docs', 'n', '{}'::jsonb)", (app_id,))
            slow.commit()
            committed.append(time.time())

        thread = threading.Thread(target=slow_enqueue)
        thread.start()
        await asyncio.sleep(0.15)
        notifier.commit()
        await asyncio.to_thread(thread.join, 5)
        assert committed, "the slow enqueue did not commit"

        async def ran() -> Any:
            row = db.execute(
                "SELECT extract(epoch FROM at) AS at FROM picloud_handlers.seen"
            ).fetchone()
            return row

        row = await eventually(ran, within=5)
        assert float(row["at"]) - committed[0] < RESWEEP_BOUND_SEC, float(row["at"]) - committed[0]
    finally:
        notifier.close()
        slow.close()


async def test_concurrent_publishers_of_one_topic_with_random_commit_delays(
    rt: Realtime,  # noqa: F811
    database: str,
) -> None:
    """Publishers of one topic that never wait for each other: each draws its position,
    then waits a random while inside its transaction, is slow at a random point of its
    commit (after its wake-up decision), and sometimes rolls back, so positions commit
    out of order and leave gaps. A live reader, a reader that keeps resuming and a reader
    that joins midway all get every committed message once, in position order, and
    nothing rolled back."""
    publishers, each = 6, 15
    await rt.topic("t")
    with psycopg.connect(database, autocommit=True) as admin:
        _slow_commit_trigger(admin)
    live = await rt.subscribe("t")
    app = rt.app["id"]
    committed: list[tuple[int, list[int]]] = []
    lock = threading.Lock()
    plans = {
        w: [(random.Random(w * 100 + n).random(), n) for n in range(each)]
        for w in range(publishers)
    }
    expected = sum(1 for plan in plans.values() for r, _ in plan if r >= 0.2)
    halfway = threading.Event()

    def publish(worker: int) -> None:
        rng = random.Random(worker)
        with psycopg.connect(database) as conn:
            for r, n in plans[worker]:
                row = conn.execute(
                    "SELECT picloud.publish(%s, 't', %s)", (app, Jsonb([worker, n]))
                ).fetchone()
                assert row is not None
                time.sleep(rng.random() / 100)  # inside the transaction, holding the position
                if r < 0.2:
                    conn.rollback()
                    continue
                conn.execute(
                    "SELECT set_config('test.slow_commit', %s, true)", (f"{rng.random() / 50}",)
                )
                conn.commit()
                with lock:
                    committed.append((row[0], [worker, n]))
                    if len(committed) == expected // 2:
                        halfway.set()

    async def resuming(stream: SseStream) -> list[tuple[int, Any]]:
        got: list[tuple[int, Any]] = []
        cursor: str | None = None
        while len(got) < expected:
            if cursor is not None:
                stream = await rt.subscribe("t", headers={"Last-Event-ID": cursor})
            try:
                for _ in range(7):  # a few messages, then a reconnect
                    if len(got) == expected:
                        break
                    event = await stream.next_event(10)
                    assert event.event == "message", event
                    got.append((event.seq, event.json["message"]))
                    cursor = event.id
            finally:
                stream.close()
        return got

    async def joining() -> list[tuple[int, Any]]:
        await asyncio.to_thread(halfway.wait, 30)
        stream = await rt.subscribe("t")
        got: list[tuple[int, Any]] = []
        try:
            while True:
                try:
                    event = await stream.next_event(3)
                except TimeoutError:
                    return got
                got.append((event.seq, event.json["message"]))
        finally:
            stream.close()

    reader = asyncio.create_task(resuming(await rt.subscribe("t")))
    midway = asyncio.create_task(joining())
    await asyncio.gather(*(asyncio.to_thread(publish, w) for w in range(publishers)))
    assert len(committed) == expected
    everything = sorted((seq, m) for seq, m in committed)
    seen_live = await live.messages(expected, within=20)
    seen_resumed = await asyncio.wait_for(reader, 30)
    seen_midway = await asyncio.wait_for(midway, 30)
    live.close()
    for seen in (seen_live, seen_resumed):
        assert seen == everything, "every committed message once, in position order"
        for w in range(publishers):  # each publisher's own messages in its order
            mine = [m[1] for _, m in seen if m[0] == w]
            assert mine == sorted(mine)
    assert seen_midway, "the reader that joined midway got the later messages"
    start = everything.index(seen_midway[0])
    assert seen_midway == everything[start:], "from where it joined: no gap, no reordering"
