"""SQL level: the picloud.* functions every data and outbox write goes through (handlers,
triggers, cron jobs, documents, files, deliveries and dead letters), as psql calls them."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from picloud.db import Row
from tests.redrive_util import seed_dead_letters
from tests.test_sql_authorize import make_app, make_key
from tests.test_sql_topics import make_topic

Conn = psycopg.Connection[Row]
BLOB = "0" * 32


def one(db: Conn, sql: str, *params: Any) -> Row:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return row


def webhook(db: Conn, app: uuid.UUID, name: str = "h", key: str | None = None) -> Row:
    return one(
        db,
        "SELECT * FROM picloud.create_handler(%s, %s, 'webhook', 'https://x.test/', api_key => %s)",
        app,
        name,
        key,
    )


@pytest.fixture
def app(db: Conn) -> uuid.UUID:
    return make_app(db, "sql-writes")


def test_the_lists_are_the_checks(db: Conn, app: uuid.UUID) -> None:
    sources = one(db, "SELECT picloud.event_sources() AS s")["s"]
    assert sources == ["kv", "docs", "files", "cron", "pubsub", "dead_letter"]
    handler = webhook(db, app)
    with pytest.raises(errors.CheckViolation):  # the table's own CHECK reads the same list
        db.execute(
            "INSERT INTO picloud.triggers (app_id, name, source, handler_id)"
            " VALUES (%s, 't', 'email', %s)",
            (app, handler["id"]),
        )
    with pytest.raises(errors.InvalidParameterValue, match="one of kv, docs"):
        db.execute("SELECT picloud.create_trigger(%s, 't', 'email', %s)", (app, handler["id"]))
    with pytest.raises(errors.InvalidParameterValue, match="unknown delivery status"):
        db.execute("SELECT * FROM picloud.list_deliveries(%s, 'bogus', NULL, 10)", (app,))
    with pytest.raises(errors.InvalidParameterValue, match="unknown source"):
        db.execute("SELECT * FROM picloud.list_dead_letters(%s, 'email', 10)", (app,))


def test_handlers_keep_their_kind_and_limits(db: Conn, app: uuid.UUID) -> None:
    handler = webhook(db, app)
    assert (handler["timeout_ms"], len(handler["secret"])) == (10000, 64)
    timed = one(
        db,
        "SELECT * FROM picloud.create_handler(%s, 'h2', 'webhook', 'https://x.test/',"
        " timeout_ms => 250)",
        app,
    )
    assert timed["timeout_ms"] == 250
    for bad in (
        "SELECT picloud.create_handler(%s, 'b', 'webhook', 'https://x.test/', timeout_ms => 0)",
        "SELECT picloud.create_handler(%s, 'b', 'webhook', 'https://x.test/', topic => 't')",
        "SELECT picloud.create_handler(%s, 'b', 'ftp', 'https://x.test/')",
    ):
        with pytest.raises(errors.CheckViolation):
            db.execute(bad, (app,))
    with pytest.raises(errors.NotNullViolation):
        db.execute("SELECT picloud.create_handler(%s, 'b', NULL)", (app,))
    with pytest.raises(errors.InvalidParameterValue, match="kind cannot change"):
        db.execute("SELECT picloud.update_handler(%s, %s, kind => 'sql')", (app, handler["id"]))
    changed = one(
        db, "SELECT * FROM picloud.update_handler(%s, %s, timeout_ms => 5)", app, handler["id"]
    )
    assert (changed["timeout_ms"], changed["url"]) == (5, "https://x.test/")
    with pytest.raises(errors.NoDataFound):
        db.execute("SELECT picloud.update_handler(%s, %s, name => 'x')", (app, uuid.uuid4()))
    with pytest.raises(errors.NoDataFound):
        db.execute("SELECT picloud.delete_handler(%s, %s)", (app, uuid.uuid4()))


def test_who_may_manage_which_kind(db: Conn, app: uuid.UUID) -> None:
    make_topic(db, app, "live")
    manager = make_key(db, app, "triggers:manage")
    both = make_key(db, app, "triggers:manage", "topics:publish")
    topic = (
        "SELECT * FROM picloud.create_handler(%s, 'to', 'topic', topic => 'live', api_key => %s)"
    )
    with pytest.raises(errors.InsufficientPrivilege, match="topics:publish"):
        db.execute(topic, (app, manager))
    handler = one(db, topic, app, both)
    with pytest.raises(errors.InsufficientPrivilege):
        db.execute(
            "SELECT picloud.update_handler(%s, %s, name => 'x', api_key => %s)",
            (app, handler["id"], manager),
        )
    sql = "SELECT picloud.create_handler(%s, 's', 'sql', function => 'x.y', api_key => %s)"
    with pytest.raises(errors.InsufficientPrivilege, match="instance:admin"):
        db.execute(sql, (app, both))
    # A trigger on a topic handler: the same rule, for creating it and for changing it.
    create = "SELECT * FROM picloud.create_trigger(%s, 't', 'kv', %s, api_key => %s)"
    with pytest.raises(errors.InsufficientPrivilege):
        db.execute(create, (app, handler["id"], manager))
    trigger = one(db, create, app, handler["id"], both)
    with pytest.raises(errors.InsufficientPrivilege):
        db.execute(
            "SELECT picloud.update_trigger(%s, %s, enabled => false, api_key => %s)",
            (app, trigger["id"], manager),
        )
    # psql (no key) is the database's own caller.
    assert one(db, "SELECT picloud.key_holds(NULL, %s, 'topics:publish') AS ok", app)["ok"]


def test_triggers_take_defaults_and_refuse_changes_of_source(db: Conn, app: uuid.UUID) -> None:
    handler = webhook(db, app)
    made = one(db, "SELECT * FROM picloud.create_trigger(%s, 't', 'kv', %s)", app, handler["id"])
    assert (made["filter"], made["max_attempts"], made["enabled"]) == ({}, 5, True)
    tuned = one(
        db,
        "SELECT * FROM picloud.create_trigger(%s, 't2', 'docs', %s, %s, 7, false)",
        app,
        handler["id"],
        Jsonb({"match": "a*"}),
    )
    assert (tuned["filter"], tuned["max_attempts"], tuned["enabled"]) == ({"match": "a*"}, 7, False)
    with pytest.raises(errors.InvalidParameterValue, match="source cannot change"):
        db.execute("SELECT picloud.update_trigger(%s, %s, source => 'kv')", (app, made["id"]))
    with pytest.raises(errors.InvalidParameterValue):
        db.execute(
            "SELECT picloud.update_trigger(%s, %s, filter => %s)",
            (app, made["id"], Jsonb({"bogus": 1})),
        )
    with pytest.raises(errors.CheckViolation):
        db.execute("SELECT picloud.update_trigger(%s, %s, max_attempts => 101)", (app, made["id"]))
    with pytest.raises(errors.ForeignKeyViolation):
        db.execute("SELECT picloud.delete_handler(%s, %s)", (app, handler["id"]))
    assert one(db, "SELECT picloud.delete_trigger(%s, %s) AS id", app, made["id"])["id"]
    with pytest.raises(errors.NoDataFound):
        db.execute("SELECT picloud.delete_trigger(%s, %s)", (app, made["id"]))


def test_cron_jobs(db: Conn, app: uuid.UUID) -> None:
    job = one(db, "SELECT * FROM picloud.create_cron_job(%s, 'n', '0 3 * * *')", app)
    assert (job["timezone"], job["payload"], job["enabled"], job["next_run_at"]) == (
        "UTC",
        {},
        True,
        None,
    )
    with pytest.raises(errors.InvalidParameterValue, match="'payload' must be a JSON object"):
        db.execute(
            "SELECT picloud.create_cron_job(%s, 'p', '* * * * *', payload => %s)",
            (app, Jsonb([1])),
        )
    with pytest.raises(errors.UniqueViolation):
        db.execute("SELECT picloud.create_cron_job(%s, 'n', '* * * * *')", (app,))
    db.execute("UPDATE picloud.cron_jobs SET next_run_at = now() WHERE app_id = %s", (app,))
    changed = one(db, "SELECT * FROM picloud.update_cron_job(%s, 'n', enabled => false)", app)
    assert (changed["enabled"], changed["next_run_at"]) == (False, None)  # the ticker's again
    with pytest.raises(errors.NoDataFound):
        db.execute("SELECT picloud.update_cron_job(%s, 'missing', enabled => true)", (app,))
    assert one(db, "SELECT picloud.delete_cron_job(%s, 'n') AS name", app)["name"] == "n"
    with pytest.raises(errors.NoDataFound):
        db.execute("SELECT picloud.delete_cron_job(%s, 'n')", (app,))


def test_document_and_file_reads_check_their_names(db: Conn, app: uuid.UUID) -> None:
    db.execute("SELECT picloud.doc_put(%s, 'c', 'a', %s)", (app, Jsonb({"n": 1})))
    assert one(db, "SELECT * FROM picloud.doc_get(%s, 'c', 'a')", app)["data"] == {"n": 1}
    assert [r["id"] for r in db.execute("SELECT * FROM picloud.doc_list(%s, 'c', NULL, 5)", (app,))]
    assert not db.execute("SELECT * FROM picloud.doc_list(%s, 'c', 'a', 5)", (app,)).fetchall()
    for bad in (
        "SELECT * FROM picloud.doc_get(%s, 'bad name', 'a')",
        "SELECT * FROM picloud.doc_get(%s, 'c', 'bad id!')",
        "SELECT * FROM picloud.doc_list(%s, 'bad name', NULL, 5)",
        "SELECT * FROM picloud.doc_delete(%s, 'c', 'bad id!')",
        "SELECT * FROM picloud.file_get(%s, '../x')",
        "SELECT * FROM picloud.file_delete(%s, '/x')",
        "SELECT * FROM picloud.file_upload_path(%s, 'a//b')",
    ):
        with pytest.raises(errors.InvalidParameterValue):
            db.execute(bad, (app,))
    db.execute(
        "SELECT picloud.file_put(%s, 'f.txt', 1, %s, 'text/plain', %s)", (app, "a" * 64, BLOB)
    )
    assert one(db, "SELECT * FROM picloud.file_get(%s, 'f.txt')", app)["blob"] == BLOB
    gone = one(db, "SELECT * FROM picloud.file_delete(%s, 'f.txt')", app)
    assert (gone["path"], gone["blob"]) == ("f.txt", BLOB)
    assert not db.execute("SELECT * FROM picloud.file_delete(%s, 'f.txt')", (app,)).fetchall()


def test_dead_letters_of_one_app(db: Conn, app: uuid.UUID) -> None:
    other = make_app(db, "sql-writes-other")
    handler = webhook(db, app)
    trigger = one(db, "SELECT * FROM picloud.create_trigger(%s, 't', 'kv', %s)", app, handler["id"])
    ids = seed_dead_letters(db, app, trigger["id"], handler["id"], 2)
    with pytest.raises(errors.NoDataFound):
        db.execute("SELECT picloud.retry_dead_letter(%s, %s, false)", (other, ids[0]))
    with pytest.raises(errors.NoDataFound):
        db.execute("SELECT picloud.discard_dead_letter(%s, %s)", (other, ids[0]))
    retried = one(db, "SELECT picloud.retry_dead_letter(%s, %s, false) AS d", app, ids[0])["d"]
    assert retried > 0
    with pytest.raises(psycopg.Error) as info:
        db.execute("SELECT picloud.retry_dead_letter(%s, %s, false)", (app, ids[0]))
    assert info.value.sqlstate == "PC410"
    listed = db.execute("SELECT * FROM picloud.list_dead_letters(%s, 'kv', 10)", (app,)).fetchall()
    assert [r["id"] for r in listed] == ids[::-1]
    assert one(db, "SELECT picloud.discard_dead_letter(%s, %s) AS id", app, ids[1])["id"] == ids[1]
    runs = one(db, "SELECT picloud.delivery_attempts_of(%s, %s) AS a", app, retried)["a"]
    assert runs == []


def writes_of(db: Conn, table: str) -> tuple[int, int]:
    """(rows inserted, rows updated) in ``table`` by the current transaction so far."""
    row = one(
        db,
        "SELECT n_tup_ins AS ins, n_tup_upd AS upd FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'picloud' AND relname = %s",
        table,
    )
    return row["ins"], row["upd"]


def test_each_create_writes_its_row_once(db: Conn, app: uuid.UUID) -> None:
    """Every field given (none left to a column default): one INSERT, no UPDATE after it."""
    with db.transaction():
        handler = one(
            db,
            "SELECT * FROM picloud.create_handler(%s, 'h', 'webhook', 'https://x.test/', %s,"
            " timeout_ms => 250)",
            app,
            "s" * 16,
        )
        assert (handler["timeout_ms"], handler["secret"]) == (250, "s" * 16)
        assert writes_of(db, "handlers") == (1, 0)
    with db.transaction():
        trigger = one(
            db,
            "SELECT * FROM picloud.create_trigger(%s, 't', 'kv', %s, %s, 7, false)",
            app,
            handler["id"],
            Jsonb({"types": ["set"]}),
        )
        assert (trigger["filter"], trigger["max_attempts"], trigger["enabled"]) == (
            {"types": ["set"]},
            7,
            False,
        )
        assert writes_of(db, "triggers") == (1, 0)
    with db.transaction():
        job = one(
            db,
            "SELECT * FROM picloud.create_cron_job(%s, 'n', '0 3 * * *', 'Europe/Paris', %s,"
            " false, '2030-01-01T02:00:00Z')",
            app,
            Jsonb({"k": 1}),
        )
        assert (job["timezone"], job["payload"], job["enabled"]) == (
            "Europe/Paris",
            {"k": 1},
            False,
        )
        assert job["next_run_at"].year == 2030
        assert writes_of(db, "cron_jobs") == (1, 0)
    with db.transaction():
        topic = one(db, "SELECT * FROM picloud.create_topic(%s, 'p', true, 'public', true)", app)
        assert (topic["external_subscribable"], topic["auth_mode"], topic["presence"]) == (
            True,
            "public",
            True,
        )
        assert writes_of(db, "topics") == (1, 0)


def test_creates_leave_what_is_not_given_to_the_columns(db: Conn, app: uuid.UUID) -> None:
    handler = one(
        db,
        "SELECT * FROM picloud.create_handler(%s, 'h', 'webhook', 'https://x.test/',"
        " timeout_ms => NULL)",
        app,
    )
    assert handler["timeout_ms"] == 10000
    trigger = one(
        db,
        "SELECT * FROM picloud.create_trigger(%s, 't', 'kv', %s, NULL, 3, NULL)",
        app,
        handler["id"],
    )
    assert (trigger["filter"], trigger["max_attempts"], trigger["enabled"]) == ({}, 3, True)
    job = one(
        db, "SELECT * FROM picloud.create_cron_job(%s, 'n', '* * * * *', NULL, NULL, false)", app
    )
    assert (job["timezone"], job["payload"], job["enabled"]) == ("UTC", {}, False)
    # The rules still hold on the composed INSERT: CHECKs, the filter check, the foreign key.
    for bad, refusal in (
        (
            "SELECT picloud.create_trigger(%s, 'b', 'kv', %s, max_attempts => 0)",
            errors.CheckViolation,
        ),
        ("SELECT picloud.create_trigger(%s, 'b c', 'kv', %s)", errors.CheckViolation),
        ("SELECT picloud.create_trigger(%s, 'b', 'kv', %s, '[1]')", errors.InvalidParameterValue),
    ):
        with pytest.raises(refusal):
            db.execute(bad, (app, handler["id"]))
    with pytest.raises(errors.ForeignKeyViolation):
        db.execute("SELECT picloud.create_trigger(%s, 'b', 'kv', %s)", (app, uuid.uuid4()))
    with pytest.raises(errors.CheckViolation):
        db.execute("SELECT picloud.create_cron_job(%s, 'bad name', '* * * * *')", (app,))
    with pytest.raises(errors.CheckViolation):
        db.execute("SELECT picloud.create_cron_job(%s, 'x', '* * *', 'UTC')", (app,))
    # A value that is SQL text is bound, never spliced into the composed statement.
    quoted = one(
        db,
        "SELECT * FROM picloud.create_cron_job(%s, 'q', '* * * * *', %s)",
        app,
        "UTC'); DROP TABLE picloud.cron_jobs; --",
    )
    assert quoted["timezone"].startswith("UTC'")
    assert one(db, "SELECT count(*) AS n FROM picloud.cron_jobs WHERE app_id = %s", app)["n"] == 2
    assert one(db, "SELECT picloud.value_or_default(NULL::integer, 3) AS v")["v"] == "DEFAULT"
    assert one(db, "SELECT picloud.value_or_default(0, 3) AS v")["v"] == "$3"


def test_the_cron_tickers_writes(db: Conn, app: uuid.UUID) -> None:
    db.execute(
        "INSERT INTO picloud.cron_jobs (app_id, name, expression) VALUES (%s, 'n', '* * * * *')",
        (app,),
    )
    schedule = "SELECT picloud.cron_schedule(%s, %s, %s::timestamptz) AS done"
    assert one(db, schedule, app, "n", "2030-01-01T00:00:00Z")["done"] is True
    # Only a job without a due time is scheduled: the first time stays.
    assert one(db, schedule, app, "n", "2031-01-01T00:00:00Z")["done"] is False
    assert one(db, schedule, app, "gone", "2031-01-01T00:00:00Z")["done"] is False
    job = one(db, "SELECT * FROM picloud.cron_jobs WHERE app_id = %s", app)
    assert (job["next_run_at"].year, job["enabled"]) == (2030, True)
    with pytest.raises(errors.InvalidParameterValue, match="next_run_at"):
        db.execute(schedule, (app, "n", None))

    disable = "SELECT picloud.cron_disable(%s, %s, %s) AS done"
    assert one(db, disable, app, "n", "expression: bad")["done"] is True
    job = one(db, "SELECT * FROM picloud.cron_jobs WHERE app_id = %s", app)
    assert (job["enabled"], job["last_error"]) == (False, "expression: bad")
    assert one(db, disable, app, "gone", "x")["done"] is False
    for error in (None, ""):
        with pytest.raises(errors.InvalidParameterValue, match="says why"):
            db.execute(disable, (app, "n", error))
