"""SQL level: message positions from a per-topic sequence and the commit-visibility horizon
(sql/32_positions.sql), and the SSE frame data (sql/35_sse_frames.sql)."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row

from picloud.db import Row
from tests.fix_db import make_app
from tests.test_sql_topics import make_topic, publish

Conn = psycopg.Connection[Row]


def blockers(conn: psycopg.Connection[Row], app: uuid.UUID, topic: str) -> list[int]:
    rows = conn.execute(
        "SELECT xid FROM picloud.topic_blockers(ARRAY[%s]::uuid[], ARRAY[%s], ARRAY[NULL::bigint])",
        (app, topic),
    ).fetchall()
    return [r["xid"] for r in rows]


def test_each_incarnation_numbers_from_its_own_sequence(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "a")
    make_topic(db, app, "b")
    assert [publish(db, app, "a", "1") for _ in range(3)] == [1, 2, 3]
    assert publish(db, app, "b", "1") == 1, "topics do not share numbers"
    seq = db.execute(
        "SELECT positions::text AS name FROM picloud.topics WHERE app_id = %s AND name = 'a'",
        (app,),
    ).fetchone()
    assert seq is not None and seq["name"].startswith("picloud_positions.")
    db.execute("DELETE FROM picloud.topics WHERE app_id = %s AND name = 'a'", (app,))
    gone = db.execute("SELECT to_regclass(%s) AS c", (seq["name"],)).fetchone()
    assert gone == {"c": None}, "the sequence goes with its topic"
    make_topic(db, app, "a")
    assert publish(db, app, "a", "1") == 1, "a new incarnation starts again at 1"
    db.execute("DELETE FROM picloud.apps WHERE id = %s", (app,))
    left = db.execute(
        "SELECT count(*) AS n FROM picloud.topics t WHERE t.app_id = %s", (app,)
    ).fetchone()
    assert left == {"n": 0}


def test_head_and_position_of_a_topic(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    assert db.execute("SELECT picloud.topic_head(%s, 't') AS h", (app,)).fetchone() == {"h": 0}
    publish(db, app, "t", "1")
    row = db.execute("SELECT * FROM picloud.topic_position(%s, 't')", (app,)).fetchone()
    assert row == {"head": 1, "blockers": []}
    missing = db.execute("SELECT * FROM picloud.topic_position(%s, 'nope')", (app,)).fetchone()
    assert missing == {"head": None, "blockers": []}
    assert db.execute("SELECT picloud.topic_head(%s, 'nope') AS h", (app,)).fetchone() == {
        "h": None
    }


def test_an_open_publisher_blocks_only_its_own_topic(database: str, db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    make_topic(db, app, "u")
    with psycopg.connect(database, row_factory=dict_row) as open_tx:
        publish(open_tx, app, "t", '"held"')
        xid = open_tx.execute("SELECT pg_current_xact_id()::text::bigint AS x").fetchone()
        assert xid is not None
        assert blockers(db, app, "t") == [xid["x"] % 2**32]
        assert blockers(db, app, "u") == [], "another topic is not held back"
        row = db.execute("SELECT * FROM picloud.topic_position(%s, 't')", (app,)).fetchone()
        assert row == {"head": 1, "blockers": [xid["x"] % 2**32]}
        # Asked about by id: still in flight.
        still = db.execute(
            "SELECT xid FROM picloud.topic_blockers(ARRAY[%s]::uuid[], ARRAY['t'], ARRAY[%s])",
            (app, xid["x"] % 2**32),
        ).fetchall()
        assert len(still) == 1
        open_tx.rollback()
    assert blockers(db, app, "t") == []
    # The rolled-back position 1 is a settled gap now.
    assert publish(db, app, "t", '"next"') == 2
    rows = db.execute("SELECT seq FROM picloud.settled_messages(%s, 't', 0, 10)", (app,))
    assert [r["seq"] for r in rows.fetchall()] == [2]


def test_blockers_asked_twice_in_one_transaction_see_a_new_publisher(
    database: str, db: Conn
) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    with psycopg.connect(database, row_factory=dict_row) as reader:
        assert blockers(reader, app, "t") == []
        with psycopg.connect(database) as late:
            publish(late, app, "t", '"late"')  # the newest transaction, still open
            assert len(blockers(reader, app, "t")) == 1, "not the backends as first read"
            late.rollback()
        reader.rollback()


def test_topic_blockers_refuses_bad_input(database: str, db: Conn) -> None:
    app = make_app(db)
    with pytest.raises(errors.InvalidParameterValue, match="one length"):
        db.execute(
            "SELECT * FROM picloud.topic_blockers(ARRAY[%s]::uuid[], ARRAY['a', 'b'],"
            " ARRAY[NULL::bigint])",
            (app,),
        )
    db.rollback()
    with pytest.raises(errors.InvalidParameterValue):
        db.execute("SELECT * FROM picloud.topic_blockers(NULL, ARRAY['a'], ARRAY[1::bigint])")
    db.rollback()
    with psycopg.connect(database) as rr:
        rr.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        with pytest.raises(errors.InvalidTransactionState, match="READ COMMITTED"):
            rr.execute(
                "SELECT * FROM picloud.topic_blockers(ARRAY[%s]::uuid[], ARRAY['a'],"
                " ARRAY[NULL::bigint])",
                (app,),
            )
    # Nothing to ask about: nothing held.
    empty = db.execute("SELECT * FROM picloud.topic_blockers('{}', '{}', '{}')").fetchall()
    assert empty == []


def test_settled_messages_of_a_missing_topic_or_after_the_head(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    publish(db, app, "t", "1")
    for topic, after in (("nope", 0), ("t", 1), ("t", 99)):
        rows = db.execute(
            "SELECT * FROM picloud.settled_messages(%s, %s, %s, 10)", (app, topic, after)
        ).fetchall()
        assert rows == []


def test_deleting_a_topic_waits_for_its_publishes_in_flight(database: str, db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    publisher = psycopg.connect(database)
    publish(publisher, app, "t", '"in flight"')
    deleted = threading.Event()

    def delete() -> None:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("DELETE FROM picloud.topics WHERE app_id = %s AND name = 't'", (app,))
        deleted.set()

    thread = threading.Thread(target=delete)
    thread.start()
    assert not deleted.wait(0.3), "the delete waits for the publish in flight"
    publisher.commit()
    publisher.close()
    thread.join(10)
    assert deleted.is_set()
    left = db.execute("SELECT count(*) AS n FROM picloud.messages WHERE app_id = %s", (app,))
    assert left.fetchone() == {"n": 0}, "no orphan messages"
    with pytest.raises(errors.NoDataFound):
        publish(db, app, "t", '"late"')


def test_sse_frame_data_is_built_once(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    publish(db, app, "t", '{"n": 1}')
    db.execute(
        "UPDATE picloud.messages SET from_subject = 'alice' WHERE app_id = %s AND seq = 1", (app,)
    )
    publish(db, app, "t", "2")
    rows = db.execute(
        "SELECT m.seq, picloud.sse_frame_data(m)::jsonb AS data FROM picloud.messages m"
        " WHERE m.app_id = %s ORDER BY m.seq",
        (app,),
    ).fetchall()
    assert [sorted(r["data"]) for r in rows] == [
        ["from", "message", "published_at", "topic"],
        ["message", "published_at", "topic"],
    ]
    assert rows[0]["data"]["from"] == "alice" and rows[0]["data"]["message"] == {"n": 1}
