"""The dispatcher's one claim function, one SQL-handler batch path and one completion
function, at SQL level: what each refuses, and the cases the other tests do not reach."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from picloud.db import Row
from tests.fix_db import make_app
from tests.test_dispatcher import (
    attempt_rows,
    batch_handlers,
    claim_keys,
    one,
    seen_keys,
    sql_handler,
    trigger,
)

Conn = psycopg.Connection[Row]


def test_a_batch_fails_a_delivery_whose_handler_is_no_longer_sql(db: Conn) -> None:
    batch_handlers(db)
    app_id = make_app(db)
    rec = sql_handler(db, app_id, "rec", "picloud_handlers.record")
    trigger(db, app_id, "t", "kv", rec)
    ids = claim_keys(db, app_id, ["a", "b"])
    # The handler of b's delivery changes kind after the claim.
    hook = one(
        db,
        "INSERT INTO picloud.handlers (app_id, name, kind, url) VALUES (%s, 'h', 'webhook',"
        " 'http://127.0.0.1:9/') RETURNING id",
        app_id,
    )
    db.execute("UPDATE picloud.deliveries SET handler_id = %s WHERE id = %s", (hook, ids["b"]))
    rows = db.execute(
        "SELECT id, outcome, error FROM picloud.run_sql_deliveries(%s, %s, 'w')",
        ([app_id, app_id], [ids["a"], ids["b"]]),
    ).fetchall()
    refused = "22023: the handler is no longer an SQL handler"
    assert {r["id"]: (r["outcome"], r["error"]) for r in rows} == {
        ids["a"]: ("ok", None),
        ids["b"]: ("retry", refused),
    }
    assert seen_keys(db) == ["a"]
    assert attempt_rows(db, ids["b"]) == [(1, "error", refused)]


@pytest.mark.parametrize(
    ("app_ids", "ids", "workers", "errors_"),
    [
        (1, 2, 2, 2),
        (2, 2, 1, 2),
        (2, 2, 2, 1),
        (2, 1, 2, 2),
    ],
)
def test_finish_refuses_arrays_of_different_lengths(
    db: Conn, app_ids: int, ids: int, workers: int, errors_: int
) -> None:
    batch_handlers(db)
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", sql_handler(db, app_id, "rec", "picloud_handlers.record"))
    claimed = list(claim_keys(db, app_id, ["a", "b"]).values())
    with pytest.raises(errors.InvalidParameterValue, match="same length"):
        db.execute(
            "SELECT * FROM picloud.finish_deliveries(%s, %s, %s, %s)",
            ([app_id] * app_ids, claimed[:ids], ["w"] * workers, [None] * errors_),
        )
    states = db.execute("SELECT DISTINCT status FROM picloud.deliveries").fetchall()
    assert states == [{"status": "running"}], "nothing was finished"


def test_finish_records_each_outcome_once(db: Conn) -> None:
    batch_handlers(db)
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", sql_handler(db, app_id, "rec", "picloud_handlers.record"))
    ids = claim_keys(db, app_id, ["ok", "bad", "stale"])
    db.execute("UPDATE picloud.deliveries SET lease_owner = 'thief' WHERE id = %s", (ids["stale"],))
    keys = ["ok", "bad", "stale"]
    rows = db.execute(
        "SELECT id, outcome FROM picloud.finish_deliveries(%s, %s, %s, %s)",
        ([app_id] * 3, [ids[k] for k in keys], ["w"] * 3, [None, "boom", None]),
    ).fetchall()
    assert {r["id"]: r["outcome"] for r in rows} == {
        ids["ok"]: "ok",
        ids["bad"]: "retry",
        ids["stale"]: "stale",
    }
    assert attempt_rows(db, ids["ok"]) == [(1, "ok", None)]
    assert attempt_rows(db, ids["bad"]) == [(1, "error", "boom")]
    assert attempt_rows(db, ids["stale"]) == [(1, None, None)]
    # complete_delivery is finish_deliveries for one: an unknown id completes nothing.
    assert one(db, "SELECT picloud.complete_delivery(-1, 'w')") is False
    assert one(db, "SELECT picloud.complete_delivery(%s, 'w')", ids["ok"]) is False


def test_a_claim_without_run_within_ms_only_leases(db: Conn) -> None:
    batch_handlers(db)
    app_id = make_app(db)
    trigger(db, app_id, "t", "kv", sql_handler(db, app_id, "rec", "picloud_handlers.record"))
    for key in ("a", "b", "c"):
        db.execute(
            "SELECT picloud.enqueue_event(%s, 'kv', %s, jsonb_build_object('key', %s::text))",
            (app_id, key, key),
        )
    rows = db.execute(
        "SELECT subject, outcome, handler_kind FROM picloud.claim_deliveries('w', 3, '1 min',"
        " max_leased => 2)"
    ).fetchall()
    assert [(r["subject"], r["outcome"], r["handler_kind"]) for r in rows] == [
        ("a", None, "sql"),
        ("b", None, "sql"),
    ]
    assert seen_keys(db) == [], "no handler ran"
    status = db.execute("SELECT subject, status FROM picloud.deliveries ORDER BY subject")
    assert [(r["subject"], r["status"]) for r in status] == [
        ("a", "running"),
        ("b", "running"),
        ("c", "pending"),
    ]
