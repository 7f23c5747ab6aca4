"""SQL level: picloud.publish_batch (atomic, consecutive, one NOTIFY) and token publishes."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from picloud.db import Row
from tests.fix_db import make_app
from tests.forgery import forged
from tests.test_sql_outbox import make_trigger, make_webhook
from tests.test_sql_topics import make_topic
from tests.test_sql_topics_tokens import b64u, forge, secret

Conn = psycopg.Connection[Row]


def batch(conn: psycopg.Connection[Any], app: uuid.UUID, topic: str, messages: Any) -> list[Row]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT id, published_at FROM picloud.publish_batch(%s, %s, %s)",
            (app, topic, None if messages is None else Jsonb(messages)),
        )
        .fetchall()
    )


def last_seq(db: Conn, app: uuid.UUID, topic: str) -> int:
    row = db.execute("SELECT picloud.topic_head(%s, %s) AS head", (app, topic)).fetchone()
    assert row is not None
    seq: int = row["head"]
    return seq


def logged(db: Conn, app: uuid.UUID, topic: str) -> list[tuple[int, Any]]:
    rows = db.execute(
        "SELECT seq, message FROM picloud.messages WHERE app_id = %s AND topic = %s ORDER BY seq",
        (app, topic),
    ).fetchall()
    return [(r["seq"], r["message"]) for r in rows]


def test_batch_takes_consecutive_ids_and_one_time(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    db.execute("SELECT picloud.publish(%s, 't', '0')", (app,))
    rows = batch(db, app, "t", [{"n": 1}, "two", None, [3]])
    assert [r["id"] for r in rows] == [2, 3, 4, 5]
    assert len({r["published_at"] for r in rows}) == 1
    assert logged(db, app, "t") == [(1, 0), (2, {"n": 1}), (3, "two"), (4, None), (5, [3])]
    assert [r["id"] for r in batch(db, app, "t", [6])] == [6]
    assert last_seq(db, app, "t") == 6


def test_one_bad_element_publishes_nothing(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    batch(db, app, "t", ["first"])
    db.execute("SET picloud.max_message_bytes = 20")
    with pytest.raises(errors.ProgramLimitExceeded, match="message 2 is 32 bytes"):
        batch(db, app, "t", ["ok", "fine", "x" * 30, "never"])
    db.execute("RESET picloud.max_message_bytes")
    assert logged(db, app, "t") == [(1, "first")]
    assert last_seq(db, app, "t") == 1


def test_bad_batches_are_refused(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    for bad in ({"not": "an array"}, "text", [], None):
        with pytest.raises(errors.InvalidParameterValue):
            batch(db, app, "t", bad)
    db.execute("SET picloud.max_batch_messages = 3")
    with pytest.raises(errors.InvalidParameterValue, match="1 to 3 messages, not 4"):
        batch(db, app, "t", [1, 2, 3, 4])
    assert [r["id"] for r in batch(db, app, "t", [1, 2, 3])] == [1, 2, 3]
    with pytest.raises(errors.NoDataFound):
        batch(db, app, "missing", [1])
    with pytest.raises(errors.NoDataFound):
        batch(db, make_app(db, "other"), "t", [1])
    assert last_seq(db, app, "t") == 3


def test_exactly_one_notify_per_batch(database: str, db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    with psycopg.connect(database, autocommit=True) as listener:
        listener.execute("LISTEN picloud_realtime")
        with psycopg.connect(database) as conn:
            batch(conn, app, "t", list(range(50)))
            conn.commit()
            batch(conn, app, "t", list(range(7)))
            conn.rollback()  # a rolled-back batch notifies nobody
            batch(conn, app, "t", ["a", "b"])
            conn.commit()
        got = list(listener.notifies(timeout=0.5))
    # The rolled-back batch drew positions 51..57 (a sequence does not roll back): they
    # stay a gap, and the next batch follows them.
    assert [n.payload for n in got] == [f"{app} 50 t", f"{app} 59 t"]
    assert logged(db, app, "t")[-2:] == [(58, "a"), (59, "b")]


def test_batch_fans_out_once_per_message(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "orders")
    hook = make_webhook(db, app)
    make_trigger(db, app, hook, "pubsub", {"match": "orders"}, name="orders")
    make_trigger(db, app, hook, "pubsub", {"match": "other"}, name="other")
    batch(db, app, "orders", [{"n": 1}, {"n": 2}, {"n": 3}])
    rows = db.execute(
        "SELECT subject, event FROM picloud.deliveries ORDER BY (event->>'message_id')::int"
    ).fetchall()
    assert [(r["subject"], r["event"]["message_id"], r["event"]["message"]) for r in rows] == [
        ("orders", 1, {"n": 1}),
        ("orders", 2, {"n": 2}),
        ("orders", 3, {"n": 3}),
    ]


# -- tokens that may publish -------------------------------------------------------


def mint(db: Conn, app: uuid.UUID, topic: str, **kw: Any) -> str:
    row = db.execute(
        "SELECT picloud.subscriber_token(%s, %s, can_publish => %s, subject => %s) AS t",
        (app, topic, kw.get("can_publish", False), kw.get("subject")),
    ).fetchone()
    assert row is not None
    token: str = row["t"]
    return token


def token_publish(db: Conn, app: uuid.UUID | None, topic: str, token: str | None) -> Row:
    row = db.execute(
        "SELECT * FROM picloud.publish_with_token(%s, %s, %s, '{\"hi\": 1}')", (app, topic, token)
    ).fetchone()
    assert row is not None
    return row


def test_publish_grant_and_subject(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "room", auth_mode="public")
    make_topic(db, app, "inside", external=False)
    plain = mint(db, app, "room")
    talker = mint(db, app, "room", can_publish=True, subject="ada")
    anon = mint(db, app, "room", can_publish=True)
    claims = db.execute(
        "SELECT topic, can_publish, subject FROM picloud.subscriber_token_claims(%s)", (talker,)
    ).fetchone()
    assert claims == {"topic": "room", "can_publish": True, "subject": "ada"}

    assert token_publish(db, app, "room", plain)["verdict"] == "unauthorized"
    assert token_publish(db, app, "room", None)["verdict"] == "unauthorized"
    assert token_publish(db, app, "room", "garbage")["verdict"] == "unauthorized"
    assert token_publish(db, app, "room", forged(talker))["verdict"] == "unauthorized"
    inside = mint(db, app, "inside", can_publish=True)
    assert token_publish(db, app, "inside", inside)["verdict"] == "not_found"
    assert token_publish(db, app, "nope", talker)["verdict"] == "not_found"
    assert token_publish(db, None, "room", talker)["verdict"] == "not_found"
    assert token_publish(db, app, "room", talker)["verdict"] == "published"
    assert token_publish(db, app, "room", anon)["id"] == 2
    rows = db.execute(
        "SELECT seq, from_subject FROM picloud.messages WHERE app_id = %s ORDER BY seq", (app,)
    ).fetchall()
    assert [(r["seq"], r["from_subject"]) for r in rows] == [(1, "ada"), (2, None)]

    # Same limits as publish.
    db.execute("SET picloud.max_message_bytes = 5")
    with pytest.raises(errors.ProgramLimitExceeded):
        token_publish(db, app, "room", talker)
    db.execute("RESET picloud.max_message_bytes")
    with pytest.raises(errors.InvalidParameterValue):
        db.execute("SELECT * FROM picloud.publish_with_token(%s, 'room', %s, NULL)", (app, talker))


def test_publish_tokens_still_subscribe_and_old_tokens_stay_valid(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "room")
    mint(db, app, "room")  # creates the key
    key, version = secret(db, app)
    old_format = forge(key, version, 4102444800, app, "room")
    assert old_format == forge(key, version, 4102444800, app, "room")
    for token in (old_format, mint(db, app, "room", can_publish=True, subject="x y")):
        verdict = db.execute(
            "SELECT picloud.authorize_subscribe(%s, 'room', %s) AS v", (app, token)
        ).fetchone()
        assert verdict == {"v": "allow"}
    # A token of the old format never grants publish.
    assert token_publish(db, app, "room", old_format)["verdict"] == "unauthorized"
    # The grant is signed: flipping '-' to 'p' in the payload breaks the MAC.
    readonly = mint(db, app, "room", subject="bob")
    payload, mac = readonly.split(".")
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert decoded.endswith(b"room - bob")
    forged = b64u(decoded.replace(b" - ", b" p "))
    assert token_publish(db, app, "room", f"{forged}.{mac}")["verdict"] == "unauthorized"
    # Rotation keeps publish tokens of the previous key valid within the grace.
    db.execute("SELECT picloud.rotate_app_secret(%s, '1 hour')", (app,))
    talker = mint(db, app, "room", can_publish=True)
    db.execute("SELECT picloud.rotate_app_secret(%s, '1 hour')", (app,))
    assert token_publish(db, app, "room", talker)["verdict"] == "published"


def test_bad_subjects_are_refused(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "room")
    for bad in ("", "x" * 129, "line\nbreak", "tab\there"):
        with pytest.raises(errors.InvalidParameterValue):
            mint(db, app, "room", subject=bad)
    assert mint(db, app, "room", subject="é" * 128)
