"""SQL level: handlers of kind 'topic' (live collections) publish inside the changing
transaction, never create deliveries, and are loop-guarded."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from picloud.db import Row
from tests.fix_db import make_app
from tests.test_sql_outbox import make_trigger, make_webhook
from tests.test_sql_topics import make_topic

Conn = psycopg.Connection[Row]


def topic_handler(db: Conn, app: uuid.UUID, topic: str, name: str | None = None) -> Any:
    row = db.execute(
        "INSERT INTO picloud.handlers (app_id, name, kind, topic) VALUES (%s, %s, 'topic', %s)"
        " RETURNING id",
        (app, name or f"to-{topic}", topic),
    ).fetchone()
    assert row is not None
    return row["id"]


def messages(db: Conn, app: uuid.UUID, topic: str) -> list[Any]:
    rows = db.execute(
        "SELECT message FROM picloud.messages WHERE app_id = %s AND topic = %s ORDER BY seq",
        (app, topic),
    ).fetchall()
    return [r["message"] for r in rows]


def count(db: Conn, sql: str, *params: Any) -> int:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    n: int = next(iter(row.values()))
    return n


@pytest.fixture
def app(db: Conn) -> uuid.UUID:
    return make_app(db)


def test_every_source_change_reaches_the_topic(db: Conn, app: uuid.UUID) -> None:
    make_topic(db, app, "live")
    handler = topic_handler(db, app, "live")
    for source in ("kv", "docs", "files"):
        make_trigger(db, app, handler, source, {}, name=source)
    db.execute("INSERT INTO picloud.kv (app_id, key, value) VALUES (%s, 'k', '1')", (app,))
    db.execute(
        "INSERT INTO picloud.docs (app_id, collection, id, data)"
        " VALUES (%s, 'todos', 'a', '{\"title\": \"milk\"}')",
        (app,),
    )
    db.execute(
        "UPDATE picloud.docs SET data = '{\"title\": \"eggs\"}' WHERE app_id = %s AND id = 'a'",
        (app,),
    )
    db.execute(
        "INSERT INTO picloud.files (app_id, path, size, sha256, content_type, blob)"
        " VALUES (%s, 'a.txt', 3, %s, 'text/plain', %s)",
        (app, "0" * 64, "1" * 32),
    )
    db.execute("DELETE FROM picloud.docs WHERE app_id = %s", (app,))
    got = messages(db, app, "live")
    assert [(m["source"], m["subject"], m["type"]) for m in got] == [
        ("kv", "k", "set"),
        ("docs", "todos", "insert"),
        ("docs", "todos", "update"),
        ("files", "a.txt", "put"),
        ("docs", "todos", "delete"),
    ]
    assert got[0]["value"] == 1 and got[2]["data"] == {"title": "eggs"} and got[2]["version"] == 2
    assert got[3]["size"] == 3 and got[3]["content_type"] == "text/plain"
    assert count(db, "SELECT count(*) FROM picloud.deliveries") == 0, "no delivery, no hop"


def test_filters_apply_and_other_handlers_still_get_deliveries(db: Conn, app: uuid.UUID) -> None:
    make_topic(db, app, "todos")
    make_trigger(db, app, topic_handler(db, app, "todos"), "docs", {"match": "todos"}, name="t")
    make_trigger(db, app, make_webhook(db, app), "docs", {}, name="w")
    for coll in ("todos", "notes"):
        db.execute("SELECT * FROM picloud.doc_put(%s, %s, 'x', '{}')", (app, coll))
    assert [m["subject"] for m in messages(db, app, "todos")] == ["todos"]
    assert count(db, "SELECT count(*) FROM picloud.deliveries") == 2


def test_a_rolled_back_change_publishes_nothing(database: str, db: Conn, app: uuid.UUID) -> None:
    make_topic(db, app, "live")
    handler = topic_handler(db, app, "live")
    for source in ("kv", "docs", "files"):
        make_trigger(db, app, handler, source, {}, name=source)
    with psycopg.connect(database, autocommit=True) as listener:
        listener.execute("LISTEN picloud_realtime")
        with psycopg.connect(database, row_factory=dict_row) as conn:
            conn.execute(
                "INSERT INTO picloud.kv (app_id, key, value) VALUES (%s, 'k', '1')", (app,)
            )
            conn.execute("SELECT * FROM picloud.doc_put(%s, 'c', 'd', '{}')", (app,))
            conn.execute(
                "INSERT INTO picloud.files (app_id, path, size, sha256, blob)"
                " VALUES (%s, 'f', 0, %s, %s)",
                (app, "0" * 64, "1" * 32),
            )
            assert len(messages(conn, app, "live")) == 3  # visible inside the transaction
            conn.rollback()
        assert list(listener.notifies(timeout=0.3)) == []
    assert messages(db, app, "live") == []
    # Positions come from a sequence: the three the rolled-back transaction drew stay drawn
    # (gaps that readers settle), and nothing of it is in the log.
    head = "SELECT picloud.topic_head(app_id, name) FROM picloud.topics WHERE name = 'live'"
    assert count(db, head) == 3


def test_loop_guard(db: Conn, app: uuid.UUID) -> None:
    # a -> (pubsub trigger) -> topic handler b; b -> (pubsub trigger) -> topic handler a.
    make_topic(db, app, "a")
    make_topic(db, app, "b")
    make_trigger(db, app, topic_handler(db, app, "b"), "pubsub", {"match": "a"}, name="a2b")
    make_trigger(db, app, topic_handler(db, app, "a"), "pubsub", {"match": "b"}, name="b2a")
    hook = make_webhook(db, app)
    make_trigger(db, app, hook, "pubsub", {}, name="all")
    db.execute("SELECT picloud.publish(%s, 'a', '\"hello\"')", (app,))
    assert messages(db, app, "a") == ["hello"]
    [echo] = messages(db, app, "b")
    assert (echo["source"], echo["subject"], echo["message"]) == ("pubsub", "a", "hello")
    # The webhook saw the original publish only: the handler's publish fanned out no further.
    rows = db.execute("SELECT subject FROM picloud.deliveries").fetchall()
    assert [r["subject"] for r in rows] == ["a"]
    # A handler publishing into its own trigger's topic stops after one level too.
    make_trigger(db, app, topic_handler(db, app, "a", "self"), "pubsub", {"match": "a"}, name="s")
    db.execute("SELECT * FROM picloud.publish_batch(%s, 'a', '[1, 2]')", (app,))
    assert [m if not isinstance(m, dict) else m["message"] for m in messages(db, app, "a")] == [
        "hello",
        1,
        2,
        1,
        2,
    ]


def test_dead_letter_triggers_can_target_topics(db: Conn, app: uuid.UUID) -> None:
    make_topic(db, app, "failures")
    make_trigger(db, app, topic_handler(db, app, "failures"), "dead_letter", {}, name="dl")
    hook = make_webhook(db, app)
    db.execute(
        "INSERT INTO picloud.dead_letters (app_id, delivery_id, trigger_id, handler_id, source,"
        " subject, event, attempts, last_error) VALUES (%s, 1, %s, %s, 'kv', 'k', %s, 3, 'boom')",
        (app, uuid.uuid4(), hook, Jsonb({"type": "set", "key": "k"})),
    )
    [msg] = messages(db, app, "failures")
    # The dead letter event's own source and subject (the failed delivery's) are kept.
    assert (msg["source"], msg["subject"], msg["type"], msg["last_error"]) == (
        "kv",
        "k",
        "dead",
        "boom",
    )
    assert msg["event"] == {"type": "set", "key": "k"}


def test_missing_topics_and_large_events(db: Conn, app: uuid.UUID) -> None:
    make_topic(db, app, "gone")
    make_topic(db, app, "big")
    make_trigger(db, app, topic_handler(db, app, "gone"), "kv", {}, name="gone")
    make_trigger(db, app, topic_handler(db, app, "big"), "kv", {}, name="big")
    db.execute("DELETE FROM picloud.topics WHERE app_id = %s AND name = 'gone'", (app,))
    db.execute("SET picloud.max_message_bytes = 200")
    # The change commits; the deleted topic is skipped; the large event is cut down.
    db.execute(
        "INSERT INTO picloud.kv (app_id, key, value) VALUES (%s, 'k', %s)", (app, Jsonb("x" * 500))
    )
    db.execute("RESET picloud.max_message_bytes")
    assert count(db, "SELECT count(*) FROM picloud.kv") == 1
    [msg] = messages(db, app, "big")
    assert msg["truncated"] is True and (msg["type"], msg["key"]) == ("set", "k")
    assert "value" not in msg
    # Not even the short form fits: the change still commits, nothing is published.
    db.execute("SET picloud.max_message_bytes = 10")
    db.execute("UPDATE picloud.kv SET value = '2' WHERE app_id = %s", (app,))
    db.execute("RESET picloud.max_message_bytes")
    assert count(db, "SELECT count(*) FROM picloud.kv WHERE value = '2'") == 1
    assert len(messages(db, app, "big")) == 1


def test_topic_handlers_are_validated(db: Conn, app: uuid.UUID) -> None:
    make_topic(db, app, "t")
    with pytest.raises(errors.InvalidParameterValue, match="no topic"):
        topic_handler(db, app, "missing")
    with pytest.raises(errors.InvalidParameterValue, match="no topic"):
        topic_handler(db, make_app(db, "other"), "t")
    with pytest.raises(errors.InvalidParameterValue):
        topic_handler(db, app, "bad name")
    with pytest.raises(errors.CheckViolation):  # a topic handler has no url, secret, function
        db.execute(
            "INSERT INTO picloud.handlers (app_id, name, kind, topic, url)"
            " VALUES (%s, 'x', 'topic', 't', 'http://127.0.0.1/')",
            (app,),
        )
    with pytest.raises(errors.CheckViolation):
        db.execute(
            "INSERT INTO picloud.handlers (app_id, name, kind) VALUES (%s, 'y', 'topic')", (app,)
        )
    handler = topic_handler(db, app, "t")
    with pytest.raises(errors.InvalidParameterValue, match="no topic"):
        db.execute("UPDATE picloud.handlers SET topic = 'nope' WHERE id = %s", (handler,))
