"""The outbox fan-out at SQL level: triggers, filters and picloud.enqueue_event."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from picloud.db import Row
from tests.fix_db import make_app
from tests.threads import run_threads

Conn = psycopg.Connection[Row]


def make_webhook(db: Conn, app_id: Any, name: str = "hook") -> Any:
    row = db.execute(
        "INSERT INTO picloud.handlers (app_id, name, kind, url) "
        "VALUES (%s, %s, 'webhook', 'http://127.0.0.1:9/hook') RETURNING id",
        (app_id, name),
    ).fetchone()
    assert row is not None
    return row["id"]


def make_trigger(
    db: Conn,
    app_id: Any,
    handler_id: Any,
    source: str,
    filter_: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    max_attempts: int = 3,
    enabled: bool = True,
) -> Any:
    row = db.execute(
        "INSERT INTO picloud.triggers (app_id, name, source, filter, handler_id, max_attempts,"
        " enabled) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            app_id,
            name or f"t-{source}-{abs(hash(str(filter_))) % 100000}",
            source,
            Jsonb(filter_ or {}),
            handler_id,
            max_attempts,
            enabled,
        ),
    ).fetchone()
    assert row is not None
    return row["id"]


def enqueue(db: Conn, app_id: Any, source: str, subject: str, event: dict[str, Any]) -> int:
    row = db.execute(
        "SELECT picloud.enqueue_event(%s, %s, %s, %s) AS n", (app_id, source, subject, Jsonb(event))
    ).fetchone()
    assert row is not None
    n: int = row["n"]
    return n


@pytest.fixture
def app_id(db: Conn) -> Any:
    return make_app(db)


@pytest.fixture
def hook(db: Conn, app_id: Any) -> Any:
    return make_webhook(db, app_id)


def test_one_delivery_per_matching_enabled_trigger(db: Conn, app_id: Any, hook: Any) -> None:
    exact = make_trigger(db, app_id, hook, "pubsub", {"match": "orders"}, name="exact")
    star = make_trigger(db, app_id, hook, "pubsub", {"match": "ord*"}, name="star")
    make_trigger(db, app_id, hook, "pubsub", {"match": "other"}, name="other")
    make_trigger(db, app_id, hook, "pubsub", {"match": "orders"}, name="off", enabled=False)
    make_trigger(db, app_id, hook, "kv", {"match": "orders"}, name="kv")
    allk = make_trigger(db, app_id, hook, "pubsub", {}, name="all")

    event = {"type": "publish", "message": {"n": 1}}
    assert enqueue(db, app_id, "pubsub", "orders", event) == 3
    rows = db.execute(
        "SELECT trigger_id, handler_id, source, subject, event, status, attempts, max_attempts"
        " FROM picloud.deliveries ORDER BY id"
    ).fetchall()
    assert {r["trigger_id"] for r in rows} == {exact, star, allk}
    for r in rows:
        assert r["handler_id"] == hook
        assert (r["source"], r["subject"], r["event"]) == ("pubsub", "orders", event)
        assert (r["status"], r["attempts"], r["max_attempts"]) == ("pending", 0, 3)


def test_glob_is_literal_except_star(db: Conn, app_id: Any, hook: Any) -> None:
    make_trigger(db, app_id, hook, "kv", {"match": "a_b%*"}, name="g")
    assert enqueue(db, app_id, "kv", "a_b%xyz", {"type": "set"}) == 1
    assert enqueue(db, app_id, "kv", "aXb%xyz", {"type": "set"}) == 0
    assert enqueue(db, app_id, "kv", "a_bXxyz", {"type": "set"}) == 0
    make_trigger(db, app_id, hook, "docs", {"match": "users.*.profile"}, name="mid")
    assert enqueue(db, app_id, "docs", "users.42.profile", {"type": "insert"}) == 1
    assert enqueue(db, app_id, "docs", "users.42.avatar", {"type": "insert"}) == 0


def test_types_filter(db: Conn, app_id: Any, hook: Any) -> None:
    make_trigger(db, app_id, hook, "kv", {"match": "*", "types": ["delete"]}, name="del")
    assert enqueue(db, app_id, "kv", "k", {"type": "set"}) == 0
    assert enqueue(db, app_id, "kv", "k", {"type": "delete"}) == 1
    assert enqueue(db, app_id, "kv", "k", {"no": "type"}) == 0


def test_other_apps_triggers_never_match(db: Conn, app_id: Any, hook: Any) -> None:
    other = make_app(db, "app2")
    make_trigger(db, other, make_webhook(db, other), "kv", {}, name="theirs")
    assert enqueue(db, app_id, "kv", "k", {"type": "set"}) == 0
    assert enqueue(db, other, "kv", "k", {"type": "set"}) == 1


def test_only_an_enabled_trigger_of_the_source_fans_out(db: Conn, app_id: Any, hook: Any) -> None:
    # (enqueue_event returns early when the app has none: the common case of a write.)
    off = make_trigger(db, app_id, hook, "kv", {}, name="off", enabled=False)
    make_trigger(db, app_id, hook, "docs", {}, name="docs")
    assert enqueue(db, app_id, "kv", "k", {"type": "set"}) == 0
    with pytest.raises(errors.InvalidParameterValue):
        enqueue(db, app_id, "nope", "k", {"type": "set"})  # still checked
    db.execute("UPDATE picloud.triggers SET enabled = true WHERE id = %s", (off,))
    assert enqueue(db, app_id, "kv", "k", {"type": "set"}) == 1


def test_enqueue_is_part_of_the_callers_transaction(database: str, app_id: Any, hook: Any) -> None:
    with psycopg.connect(database, row_factory=psycopg.rows.dict_row) as conn:
        make_trigger(conn, app_id, hook, "kv", {}, name="tx")
        conn.commit()
        assert enqueue(conn, app_id, "kv", "k", {"type": "set"}) == 1
        conn.rollback()
        count = conn.execute("SELECT count(*) AS n FROM picloud.deliveries").fetchone()
        assert count is not None and count["n"] == 0


def test_enqueue_notifies_the_dispatcher_on_commit_only(
    database: str, db: Conn, app_id: Any, hook: Any
) -> None:
    make_trigger(db, app_id, hook, "kv", {}, name="n")
    with psycopg.connect(database, autocommit=True) as listener:
        listener.execute("LISTEN picloud_dispatch")
        with psycopg.connect(database, row_factory=psycopg.rows.dict_row) as conn:
            enqueue(conn, app_id, "kv", "k", {"type": "set"})  # type: ignore[arg-type]
            enqueue(conn, app_id, "kv", "k2", {"type": "set"})  # type: ignore[arg-type]
            conn.rollback()
            enqueue(conn, app_id, "kv", "k3", {"type": "set"})  # type: ignore[arg-type]
            conn.commit()
        got = list(listener.notifies(timeout=0.5, stop_after=2))
    assert len(got) == 1
    assert got[0].channel == "picloud_dispatch"


def test_bad_input_is_invalid_parameter_value(db: Conn, app_id: Any, hook: Any) -> None:
    with pytest.raises(errors.InvalidParameterValue):
        enqueue(db, app_id, "nope", "k", {"type": "set"})
    with pytest.raises(errors.InvalidParameterValue):
        db.execute("SELECT picloud.enqueue_event(%s, 'kv', 'k', '[1]')", (app_id,))
    for bad in ({"match": 3}, {"match": ""}, {"types": []}, {"types": [1]}, {"extra": 1}):
        with pytest.raises(errors.InvalidParameterValue):
            make_trigger(db, app_id, hook, "kv", bad, name="bad")


def test_sql_handler_must_exist_in_an_allowed_schema(db: Conn, app_id: Any) -> None:
    db.execute("CREATE SCHEMA picloud_handlers")
    db.execute("CREATE FUNCTION picloud_handlers.noop(event jsonb) RETURNS void LANGUAGE sql AS ''")
    db.execute("CREATE FUNCTION public.noop(event jsonb) RETURNS void LANGUAGE sql AS ''")
    ok = "INSERT INTO picloud.handlers (app_id, name, kind, function) VALUES (%s, %s, 'sql', %s)"
    db.execute(ok, (app_id, "ok", "picloud_handlers.noop"))
    for name, fn in (("public", "public.noop"), ("missing", "picloud_handlers.nope")):
        with pytest.raises(errors.InvalidParameterValue):
            db.execute(ok, (app_id, name, fn))
    with pytest.raises(errors.InvalidParameterValue):
        db.execute(ok, (app_id, "inj", 'picloud_handlers.noop"; drop'))
    db.execute("SET picloud.sql_handler_schemas = 'public, other'")
    db.execute(ok, (app_id, "public", "public.noop"))


def test_webhook_gets_a_generated_secret(db: Conn, app_id: Any, hook: Any) -> None:
    row = db.execute("SELECT secret FROM picloud.handlers WHERE id = %s", (hook,)).fetchone()
    assert row is not None and len(row["secret"]) == 64


def test_concurrent_enqueues_all_land(database: str, db: Conn, app_id: Any, hook: Any) -> None:
    make_trigger(db, app_id, hook, "kv", {}, name="c")

    def work(i: int) -> None:
        with psycopg.connect(database, autocommit=True) as conn:
            for j in range(20):
                conn.execute(
                    "SELECT picloud.enqueue_event(%s, 'kv', %s, '{\"type\":\"set\"}')",
                    (app_id, f"k{i}-{j}"),
                )

    run_threads(work, range(4))
    row = db.execute("SELECT count(DISTINCT subject) AS n FROM picloud.deliveries").fetchone()
    assert row is not None and row["n"] == 80


def test_publish_fans_out_to_matching_pubsub_triggers(
    database: str, db: Conn, app_id: Any, hook: Any
) -> None:
    db.execute("INSERT INTO picloud.topics (app_id, name) VALUES (%s, 'orders.eu')", (app_id,))
    db.execute("INSERT INTO picloud.topics (app_id, name) VALUES (%s, 'news')", (app_id,))
    exact = make_trigger(db, app_id, hook, "pubsub", {"match": "orders.eu"}, name="exact")
    star = make_trigger(db, app_id, hook, "pubsub", {"match": "orders.*"}, name="star")
    make_trigger(db, app_id, hook, "kv", {"match": "orders.eu"}, name="kv")

    seq = db.execute(
        "SELECT picloud.publish(%s, 'orders.eu', %s) AS id", (app_id, Jsonb({"total": 12}))
    ).fetchone()
    assert seq is not None and seq["id"] == 1
    rows = db.execute(
        "SELECT trigger_id, subject, event FROM picloud.deliveries ORDER BY trigger_id"
    ).fetchall()
    assert {r["trigger_id"] for r in rows} == {exact, star}
    published = db.execute("SELECT published_at FROM picloud.messages").fetchone()
    assert published is not None
    for r in rows:
        assert r["subject"] == "orders.eu"
        event = r["event"]
        assert (event["type"], event["topic"], event["message_id"]) == ("publish", "orders.eu", 1)
        assert event["message"] == {"total": 12}
        assert event["published_at"] is not None

    db.execute("SELECT picloud.publish(%s, 'news', '\"hi\"')", (app_id,))
    count = db.execute("SELECT count(*) AS n FROM picloud.deliveries").fetchone()
    assert count is not None and count["n"] == 2, "no trigger matches 'news'"

    # A rolled-back publish enqueues nothing.
    with psycopg.connect(database) as conn:
        conn.execute("SELECT picloud.publish(%s, 'orders.eu', '1')", (app_id,))
        conn.rollback()
    count = db.execute("SELECT count(*) AS n FROM picloud.deliveries").fetchone()
    assert count is not None and count["n"] == 2


def test_publish_fans_out_only_for_the_apps_enabled_pubsub_triggers(
    db: Conn, app_id: Any, hook: Any
) -> None:
    other = make_app(db, "app2")
    make_trigger(db, other, make_webhook(db, other), "pubsub", {}, name="theirs")
    mine = make_trigger(db, app_id, hook, "pubsub", {}, name="mine", enabled=False)
    db.execute("INSERT INTO picloud.topics (app_id, name) VALUES (%s, 't')", (app_id,))

    def deliveries() -> int:
        row = db.execute("SELECT count(*) AS n FROM picloud.deliveries").fetchone()
        assert row is not None
        return int(row["n"])

    db.execute("SELECT picloud.publish(%s, 't', '1')", (app_id,))
    assert deliveries() == 0, "another app's trigger and a disabled one enqueue nothing"
    db.execute("UPDATE picloud.triggers SET enabled = true WHERE id = %s", (mine,))
    db.execute("SELECT picloud.publish(%s, 't', '2')", (app_id,))
    assert deliveries() == 1
