"""SQL-level behaviour of the data sources: plain DML fans out like the API does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from picloud.db import Row
from tests.fix_db import make_app
from tests.sources_util import add_trigger, deliveries

Conn = psycopg.Connection[Row]


def test_plain_kv_dml_enqueues_deliveries(db: Conn) -> None:
    app = make_app(db)
    add_trigger(db, app, "kv", "user:*")
    db.execute(
        "INSERT INTO picloud.kv (app_id, key, value) VALUES (%s, 'user:1', '{\"n\": 1}')", (app,)
    )
    db.execute("INSERT INTO picloud.kv (app_id, key, value) VALUES (%s, 'other', '1')", (app,))
    db.execute("UPDATE picloud.kv SET value = '2' WHERE app_id = %s AND key = 'user:1'", (app,))
    db.execute("UPDATE picloud.kv SET key = 'user:2' WHERE app_id = %s AND key = 'user:1'", (app,))
    db.execute("DELETE FROM picloud.kv WHERE app_id = %s", (app,))
    got = [
        (d["subject"], d["event"]["type"], d["event"].get("value"))
        for d in deliveries(db, app, "kv")
    ]
    assert got == [
        ("user:1", "set", {"n": 1}),
        ("user:1", "set", 2),
        ("user:1", "delete", None),
        ("user:2", "set", 2),
        ("user:2", "delete", None),
    ]


def test_kv_set_function_validates_and_reports_creation(db: Conn) -> None:
    app = make_app(db)
    add_trigger(db, app, "kv")
    first = db.execute("SELECT (entry).key, created FROM picloud.kv_set(%s, 'a/b', '1')", (app,))
    assert first.fetchone() == {"key": "a/b", "created": True}
    again = db.execute(
        "SELECT (entry).value, created FROM picloud.kv_set(%s, 'a/b', 'null')", (app,)
    )
    assert again.fetchone() == {"value": None, "created": False}
    assert len(deliveries(db, app, "kv")) == 2
    for bad in ("", "has space", "x" * 257, "star*", "tab\tkey"):
        with pytest.raises(pg_errors.InvalidParameterValue, match="invalid key"):
            db.execute("SELECT * FROM picloud.kv_set(%s, %s, '1')", (app, bad))
    with pytest.raises(pg_errors.CheckViolation):
        db.execute(
            "INSERT INTO picloud.kv (app_id, key, value) VALUES (%s, 'bad key', '1')", (app,)
        )


def test_kv_fan_out_is_transactional(db: Conn) -> None:
    app = make_app(db)
    add_trigger(db, app, "kv")
    with db.transaction(force_rollback=True):
        db.execute("INSERT INTO picloud.kv (app_id, key, value) VALUES (%s, 'k', '1')", (app,))
        assert len(deliveries(db, app, "kv")) == 1
    assert deliveries(db, app, "kv") == []


def test_plain_docs_dml_enqueues_deliveries_and_bumps_version(db: Conn) -> None:
    app = make_app(db)
    add_trigger(db, app, "docs", "orders")
    db.execute(
        "INSERT INTO picloud.docs (app_id, collection, id, data) VALUES (%s, 'orders', 'o1', %s)",
        (app, Jsonb({"total": 5})),
    )
    db.execute(
        "INSERT INTO picloud.docs (app_id, collection, id, data) VALUES (%s, 'carts', 'c1', '{}')",
        (app,),
    )
    db.execute(
        "UPDATE picloud.docs SET data = '{\"total\": 6}' WHERE app_id = %s AND id = 'o1'", (app,)
    )
    row = db.execute("SELECT version FROM picloud.docs WHERE app_id = %s AND id = 'o1'", (app,))
    assert row.fetchone() == {"version": 2}
    db.execute("DELETE FROM picloud.docs WHERE app_id = %s", (app,))
    got = [
        (d["subject"], d["event"]["type"], d["event"]["id"], d["event"]["version"])
        for d in deliveries(db, app, "docs")
    ]
    assert got == [
        ("orders", "insert", "o1", 1),
        ("orders", "update", "o1", 2),
        ("orders", "delete", "o1", 2),
    ]
    assert deliveries(db, app, "docs")[1]["event"]["data"] == {"total": 6}


def test_doc_functions_enforce_versions_and_shapes(db: Conn) -> None:
    app = make_app(db)
    put = "SELECT (doc).version, created FROM picloud.doc_put(%s, 'c', 'd', %s, %s)"
    assert db.execute(put, (app, Jsonb({"a": 1}), None)).fetchone() == {
        "version": 1,
        "created": True,
    }
    assert db.execute(put, (app, Jsonb({"a": 2}), 1)).fetchone() == {"version": 2, "created": False}
    with pytest.raises(psycopg.Error, match="version conflict") as info:
        db.execute(put, (app, Jsonb({"a": 3}), 1))
    assert info.value.sqlstate == "PC409"
    with pytest.raises(psycopg.Error, match="does not exist") as info:
        db.execute("SELECT * FROM picloud.doc_put(%s, 'c', 'nope', '{}', 1)", (app,))
    assert info.value.sqlstate == "PC409"
    with pytest.raises(pg_errors.InvalidParameterValue, match="JSON object"):
        db.execute(put, (app, Jsonb([1, 2]), None))
    with pytest.raises(pg_errors.InvalidParameterValue, match="invalid collection"):
        db.execute("SELECT * FROM picloud.doc_put(%s, 'bad/coll', 'd', '{}', NULL)", (app,))
    with pytest.raises(psycopg.Error, match="version conflict"):
        db.execute("SELECT picloud.doc_delete(%s, 'c', 'd', 1)", (app,))
    with pytest.raises(pg_errors.NoDataFound):
        db.execute("SELECT picloud.doc_delete(%s, 'c', 'missing', NULL)", (app,))
    deleted = db.execute("SELECT picloud.doc_delete(%s, 'c', 'd', 2) AS v", (app,)).fetchone()
    assert deleted == {"v": 2}


def test_plain_files_dml_enqueues_deliveries(db: Conn) -> None:
    app = make_app(db)
    add_trigger(db, app, "files", "img/*")
    db.execute(
        "INSERT INTO picloud.files (app_id, path, size, sha256, blob) "
        "VALUES (%s, 'img/a.png', 3, repeat('a', 64), repeat('b', 32))",
        (app,),
    )
    db.execute("DELETE FROM picloud.files WHERE app_id = %s", (app,))
    got = [
        (d["subject"], d["event"]["type"], d["event"].get("size"))
        for d in deliveries(db, app, "files")
    ]
    assert got == [("img/a.png", "put", 3), ("img/a.png", "delete", None)]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("a/../b", '".."'),
        ("..", '".."'),
        ("a/./b", '"."'),
        ("a//b", "empty path segments"),
        ("a/", "empty path segments"),
        ("a\\b", "backslash"),
        ("a\x01b", "control"),
        ("x" * 1025, "longer than 1024"),
    ],
)
def test_file_paths_are_checked(db: Conn, path: str, why: str) -> None:
    with pytest.raises(pg_errors.InvalidParameterValue, match=why):
        db.execute("SELECT picloud.check_file_path(%s)", (path,))


def test_file_put_returns_the_replaced_blob(db: Conn) -> None:
    app = make_app(db)
    put = (
        "SELECT (file).blob, old_blob FROM picloud.file_put(%s, 'a.txt', 0, repeat('0', 64), "
        "'text/plain', %s)"
    )
    assert db.execute(put, (app, "1" * 32)).fetchone() == {"blob": "1" * 32, "old_blob": None}
    assert db.execute(put, (app, "2" * 32)).fetchone() == {"blob": "2" * 32, "old_blob": "1" * 32}


def test_deleting_an_app_with_source_rows_and_triggers_works(db: Conn) -> None:
    app = make_app(db)
    for source in ("kv", "docs", "files"):
        add_trigger(db, app, source)
    db.execute("SELECT * FROM picloud.kv_set(%s, 'k', '1')", (app,))
    db.execute("SELECT * FROM picloud.doc_put(%s, 'c', 'd', '{}', NULL)", (app,))
    db.execute(
        "SELECT * FROM picloud.file_put(%s, 'f', 0, repeat('0', 64), 'a/b', repeat('1', 32))",
        (app,),
    )
    db.execute("DELETE FROM picloud.apps WHERE id = %s", (app,))
    assert db.execute("SELECT count(*) AS n FROM picloud.deliveries").fetchone() == {"n": 0}


def test_cron_fire_fires_a_due_time_once(db: Conn) -> None:
    app = make_app(db)
    add_trigger(db, app, "cron", "nightly")
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    db.execute(
        "INSERT INTO picloud.cron_jobs (app_id, name, expression, next_run_at, payload) "
        "VALUES (%s, 'nightly', '0 3 * * *', %s, '{\"k\": 1}')",
        (app, due),
    )
    nxt = due + timedelta(days=1)
    fire = "SELECT picloud.cron_fire(%s, 'nightly', %s, %s) AS n"
    assert db.execute(fire, (app, due, nxt)).fetchone() == {"n": 1}
    assert db.execute(fire, (app, due, nxt)).fetchone() == {"n": None}
    [delivery] = deliveries(db, app, "cron")
    assert delivery["subject"] == "nightly"
    event = delivery["event"]
    assert (event["type"], event["job"], event["payload"]) == ("fire", "nightly", {"k": 1})
    row = db.execute("SELECT next_run_at FROM picloud.cron_jobs WHERE app_id = %s", (app,))
    assert row.fetchone() == {"next_run_at": nxt}


def test_cron_expression_needs_five_fields(db: Conn) -> None:
    app = make_app(db)
    with pytest.raises(pg_errors.CheckViolation):
        db.execute(
            "INSERT INTO picloud.cron_jobs (app_id, name, expression) VALUES (%s, 'j', '* * * *')",
            (app,),
        )
