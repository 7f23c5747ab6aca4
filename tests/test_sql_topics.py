"""SQL level: topics, transactional publish, gap-free sequences, retention."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row

from picloud.db import Row
from tests.fix_db import make_app
from tests.threads import run_threads


def make_topic(
    db: psycopg.Connection[Row],
    app_id: uuid.UUID,
    name: str = "news",
    *,
    external: bool = True,
    auth_mode: str = "token",
) -> None:
    db.execute(
        "SELECT * FROM picloud.create_topic(%s, %s, %s, %s)", (app_id, name, external, auth_mode)
    )


def publish(conn: psycopg.Connection[Any], app_id: uuid.UUID, topic: str, message: str) -> int:
    row = conn.execute(
        "SELECT picloud.publish(%s, %s, %s::jsonb)", (app_id, topic, message)
    ).fetchone()
    assert row is not None
    seq: int = row["publish"] if isinstance(row, dict) else row[0]
    return seq


def test_topic_names_and_modes(db: psycopg.Connection[Row]) -> None:
    app = make_app(db)
    for good in ["a", "A.b:c-d_e", "x" * 128, "0"]:
        make_topic(db, app, good)
    for bad in ["", "x" * 129, "a*", "with space", "é", "a/b", None]:
        with pytest.raises(errors.InvalidParameterValue):
            make_topic(db, app, bad)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidParameterValue):
        make_topic(db, app, "m", auth_mode="secret")
    with pytest.raises(errors.UniqueViolation):
        make_topic(db, app, "a")
    # Plain DML is held to the same rules by the table's constraints.
    with pytest.raises(errors.CheckViolation):
        db.execute("INSERT INTO picloud.topics (app_id, name) VALUES (%s, 'a*b')", (app,))
    with pytest.raises(errors.CheckViolation):
        db.execute(
            "INSERT INTO picloud.topics (app_id, name, auth_mode) VALUES (%s, 'ok', 'x')", (app,)
        )
    row = db.execute(
        "SELECT external_subscribable, auth_mode FROM picloud.topics"
        " WHERE app_id = %s AND name = 'a'",
        (app,),
    ).fetchone()
    assert row == {"external_subscribable": True, "auth_mode": "token"}
    db.execute("INSERT INTO picloud.topics (app_id, name) VALUES (%s, 'defaults')", (app,))
    row = db.execute(
        "SELECT external_subscribable, auth_mode FROM picloud.topics WHERE name = 'defaults'"
    ).fetchone()
    assert row == {"external_subscribable": False, "auth_mode": "token"}


def test_publish_appends_with_sequence_and_validates(db: psycopg.Connection[Row]) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    assert [publish(db, app, "t", f'{{"n": {i}}}') for i in range(3)] == [1, 2, 3]
    rows = db.execute(
        "SELECT seq, message, published_at FROM picloud.messages WHERE app_id = %s ORDER BY seq",
        (app,),
    ).fetchall()
    assert [(r["seq"], r["message"]) for r in rows] == [(1, {"n": 0}), (2, {"n": 1}), (3, {"n": 2})]
    stamps = [r["published_at"] for r in rows]
    assert stamps == sorted(stamps)
    row = db.execute("SELECT * FROM picloud.publish_message(%s, 't', '\"x\"')", (app,)).fetchone()
    assert row is not None and row["id"] == 4
    assert (
        row["published_at"]
        == db.execute("SELECT published_at FROM picloud.messages WHERE seq = 4").fetchone()[
            "published_at"
        ]
    )  # type: ignore[index]

    with pytest.raises(errors.NoDataFound):
        publish(db, app, "missing", "1")
    with pytest.raises(errors.NoDataFound):
        publish(db, uuid.uuid4(), "t", "1")
    with pytest.raises(errors.InvalidParameterValue):
        db.execute("SELECT picloud.publish(%s, 't', NULL)", (app,))
    db.execute("SET picloud.max_message_bytes = 20")
    assert publish(db, app, "t", '"' + "y" * 18 + '"') == 5
    with pytest.raises(errors.ProgramLimitExceeded, match="more than the limit of 20 bytes"):
        publish(db, app, "t", '"' + "y" * 19 + '"')
    db.execute("RESET picloud.max_message_bytes")
    assert db.execute("SELECT picloud.max_message_bytes() AS n").fetchone() == {"n": 65536}


def _listen(database: str) -> psycopg.Connection[tuple[Any, ...]]:
    conn = psycopg.connect(database, autocommit=True)
    conn.execute("LISTEN picloud_realtime")
    return conn


def _drain(conn: psycopg.Connection[Any], timeout: float = 0.5) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=timeout)]


def test_rolled_back_publish_is_never_delivered(database: str, db: psycopg.Connection[Row]) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    listener = _listen(database)
    with psycopg.connect(database) as pub:
        publish(pub, app, "t", '"doomed"')
        pub.rollback()
        # Positions come from the topic's sequence, which does not roll back: the
        # rolled-back one stays a gap (readers settle it, picloud.topic_blockers).
        assert publish(pub, app, "t", '"kept"') == 2, "the rolled-back position is not reused"
        pub.commit()
    got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    got += _drain(listener, 0.3)
    listener.close()
    assert got == [f"{app} 2 t"]
    rows = db.execute("SELECT seq, message FROM picloud.messages").fetchall()
    assert rows == [{"seq": 2, "message": "kept"}]
    settled = db.execute(
        "SELECT seq FROM picloud.settled_messages(%s, 't', 0, 10)", (app,)
    ).fetchall()
    assert settled == [{"seq": 2}], "nothing in flight: the gap is settled"


def test_publishers_of_one_topic_do_not_wait_for_each_others_commit(
    database: str, db: psycopg.Connection[Row]
) -> None:
    """A later publisher of a topic does not wait for an earlier uncommitted one, and a
    reader does not pass the earlier one's position while it may still commit."""
    app = make_app(db)
    make_topic(db, app, "t")
    make_topic(db, app, "other")
    first = psycopg.connect(database)
    assert publish(first, app, "t", '"first"') == 1  # an open transaction holds position 1
    result: list[int] = []
    second_done = threading.Event()

    def second() -> None:
        with psycopg.connect(database, autocommit=True) as conn:
            result.append(publish(conn, app, "t", '"second"'))
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert publish(db, app, "other", '"free"') == 1
    assert second_done.wait(10), "the second publisher does not wait for the first to commit"
    thread.join(10)
    assert result == [2]

    def settled() -> list[int]:
        rows = db.execute("SELECT seq FROM picloud.settled_messages(%s, 't', 0, 10)", (app,))
        return [r["seq"] for r in rows.fetchall()]

    blockers = db.execute(
        "SELECT xid FROM picloud.topic_blockers(ARRAY[%s]::uuid[], ARRAY['t'],"
        " ARRAY[NULL::bigint])",
        (app,),
    ).fetchall()
    assert len(blockers) == 1, "the open publisher of t is in flight"
    assert settled() == [], "2 is visible, but 1 may still commit before it"
    first.commit()
    first.close()
    assert settled() == [1, 2]


def test_readers_never_skip_under_concurrent_out_of_order_commits(
    database: str, db: psycopg.Connection[Row]
) -> None:
    """Many publishers, random think time inside their transactions, some rolling back:
    positions commit out of order, yet a reader that follows the topic with
    picloud.settled_messages (after the last position it saw) receives every committed
    message once, in position order, and nothing rolled back."""
    app = make_app(db)
    make_topic(db, app, "t")
    committed: list[int] = []
    lock = threading.Lock()
    rng = random.Random(7)
    plans = [[(rng.random() * 0.01, rng.random() < 0.2) for _ in range(15)] for _ in range(6)]
    seen: list[int] = []
    done = threading.Event()

    def worker(plan: list[tuple[float, bool]]) -> None:
        with psycopg.connect(database) as conn:
            for pause, rollback in plan:
                seq = publish(conn, app, "t", '"m"')
                time.sleep(pause)
                if rollback:
                    conn.rollback()
                else:
                    conn.commit()
                    with lock:
                        committed.append(seq)

    def reader() -> None:
        with psycopg.connect(database, autocommit=True) as conn:
            while True:
                finished = done.is_set()  # read once more after the last commit
                after = seen[-1] if seen else 0
                rows = conn.execute(
                    "SELECT seq FROM picloud.settled_messages(%s, 't', %s, 1000)", (app, after)
                ).fetchall()
                seen.extend(r[0] for r in rows)
                if finished and not rows:
                    return
                time.sleep(0.001)

    tail = threading.Thread(target=reader)
    tail.start()
    run_threads(worker, plans)
    done.set()
    tail.join(30)
    expected = sum(1 for p in plans for _, rb in p if not rb)
    assert len(committed) == expected
    assert seen == sorted(committed), "every committed message once, in position order"


def test_notify_payload_is_small_and_topic_delete_notifies_control(
    database: str, db: psycopg.Connection[Row]
) -> None:
    app = make_app(db)
    make_topic(db, app, "t" * 128)
    make_topic(db, app, "gone")
    listener = psycopg.connect(database, autocommit=True)
    listener.execute("LISTEN picloud_realtime")
    listener.execute("LISTEN picloud_realtime_control")
    big = '"' + "z" * 60000 + '"'
    publish(db, app, "t" * 128, big)
    db.execute("UPDATE picloud.topics SET auth_mode = 'public' WHERE name = 'gone'")
    db.execute("UPDATE picloud.topics SET auth_mode = 'token' WHERE name = 'gone'")
    db.execute("DELETE FROM picloud.topics WHERE name = 'gone'")
    db.execute("DELETE FROM picloud.apps WHERE id = %s", (app,))
    got = [(n.channel, n.payload) for n in listener.notifies(timeout=5, stop_after=4)]
    got += [(n.channel, n.payload) for n in listener.notifies(timeout=0.3)]
    listener.close()
    assert got == [
        ("picloud_realtime", f"{app} 1 {'t' * 128}"),
        ("picloud_realtime_control", f"close {app} gone"),  # public -> token narrows access
        ("picloud_realtime_control", f"close {app} gone"),
        ("picloud_realtime_control", f"close {app} {'t' * 128}"),  # app delete cascades
    ]
    assert db.execute("SELECT count(*) AS n FROM picloud.messages").fetchone() == {"n": 0}


def test_prune_messages_removes_only_old_ones(db: psycopg.Connection[Row]) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    for _ in range(5):
        publish(db, app, "t", "1")
    db.execute(
        "UPDATE picloud.messages SET published_at = now() - interval '2 hours' WHERE seq <= 3"
    )
    assert db.execute("SELECT picloud.prune_messages('1 hour') AS n").fetchone() == {"n": 3}
    rows = db.execute("SELECT seq FROM picloud.messages ORDER BY seq").fetchall()
    assert [r["seq"] for r in rows] == [4, 5]
    assert publish(db, app, "t", "1") == 6, "the counter survives pruning"
    with pytest.raises(errors.InvalidParameterValue):
        db.execute("SELECT picloud.prune_messages('-1 hour')")


def test_sql_functions_work_for_a_plain_psql_user(database: str) -> None:
    """No session settings needed: defaults apply (a DBA at psql)."""
    with psycopg.connect(database, autocommit=True, row_factory=dict_row) as conn:
        app = make_app(conn, "psql")
        make_topic(conn, app, "t")
        assert publish(conn, app, "t", '{"hello": "world"}') == 1


def test_topic_delete_takes_its_messages_even_racing_a_publish(
    database: str, db: psycopg.Connection[Row]
) -> None:
    app = make_app(db)
    make_topic(db, app, "gone")
    make_topic(db, app, "kept")
    publish(db, app, "kept", "1")
    publisher = psycopg.connect(database)
    publish(publisher, app, "gone", "1")  # uncommitted: holds the topic row
    deleted = threading.Event()

    def delete() -> None:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("DELETE FROM picloud.topics WHERE app_id = %s AND name = 'gone'", (app,))
        deleted.set()

    thread = threading.Thread(target=delete)
    thread.start()
    assert not deleted.wait(0.3), "the delete waits for the publish to finish"
    publisher.commit()
    publisher.close()
    thread.join(10)
    rows = db.execute("SELECT topic, seq FROM picloud.messages ORDER BY topic").fetchall()
    assert rows == [{"topic": "kept", "seq": 1}], "no orphan left behind"
    with pytest.raises(errors.NoDataFound):
        publish(db, app, "gone", "2")


def test_a_recreated_topic_has_a_new_epoch(db: psycopg.Connection[Row]) -> None:
    app_id = make_app(db)
    make_topic(db, app_id, "t")
    epochs = []
    for _ in range(3):
        publish(db, app_id, "t", "1")
        row = db.execute(
            "SELECT epoch, picloud.topic_head(app_id, name) AS last_seq FROM picloud.topics"
            " WHERE app_id = %s AND name = 't'",
            (app_id,),
        ).fetchone()
        assert row is not None and row["last_seq"] == 1, "sequence numbers restart"
        epochs.append(row["epoch"])
        # Deleted and created again, even in one transaction: another incarnation.
        with db.transaction():
            db.execute("DELETE FROM picloud.topics WHERE app_id = %s AND name = 't'", (app_id,))
            make_topic(db, app_id, "t")
    assert len(set(epochs)) == 3
    with pytest.raises(errors.CheckViolation):
        db.execute("UPDATE picloud.topics SET epoch = -1 WHERE app_id = %s", (app_id,))


def test_publish_to_an_invalid_name_names_it(db: psycopg.Connection[Row]) -> None:
    app_id = make_app(db)
    with pytest.raises(errors.InvalidParameterValue) as bad:
        publish(db, app_id, "bad*", "1")
    assert bad.value.diag.message_primary is not None
    assert bad.value.diag.message_primary.startswith("invalid topic name 'bad*'")
    with pytest.raises(errors.NoDataFound):
        publish(db, app_id, "missing", "1")
    with pytest.raises(errors.InvalidParameterValue):
        db.execute("SELECT * FROM picloud.create_topic(%s, 'x y')", (app_id,))
