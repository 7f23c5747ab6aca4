"""Redrive in SQL: retry_dead_letter once only (409-style PC410 unless force), and the bulk
retry_dead_letters with its filter, its limit (batches) and its idempotency."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors

from picloud.db import Row
from tests.redrive_util import seed_dead_letters
from tests.test_sql_outbox import app_id, hook, make_trigger
from tests.threads import run_threads

__all__ = ["app_id", "hook"]

Conn = psycopg.Connection[Row]


def scalar(db: Conn, sql: str, *params: Any) -> Any:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return next(iter(row.values()))


@pytest.fixture
def trigger(db: Conn, app_id: Any, hook: Any) -> Any:
    return make_trigger(db, app_id, hook, "kv", {}, name="t", max_attempts=4)


def test_second_retry_is_refused_naming_the_first_delivery(
    db: Conn, app_id: Any, hook: Any, trigger: Any
) -> None:
    [dl] = seed_dead_letters(db, app_id, trigger, hook, 1)
    first = scalar(db, "SELECT picloud.retry_dead_letter(%s)", dl)
    with pytest.raises(psycopg.Error) as info:
        db.execute("SELECT picloud.retry_dead_letter(%s)", (dl,))
    assert info.value.sqlstate == "PC410"
    assert info.value.diag.message_detail == str(first)
    assert f"already retried as delivery {first}" in str(info.value.diag.message_primary)
    assert scalar(db, "SELECT count(*) FROM picloud.deliveries WHERE retry_of = %s", dl) == 1
    # force enqueues it again and the dead letter now names the newer delivery.
    second = scalar(db, "SELECT picloud.retry_dead_letter(%s, force => true)", dl)
    assert second != first
    assert scalar(db, "SELECT retry_delivery_id FROM picloud.dead_letters WHERE id = %s", dl) == (
        second
    )
    assert scalar(db, "SELECT count(*) FROM picloud.deliveries WHERE retry_of = %s", dl) == 2


def test_concurrent_retries_create_one_delivery(
    db: Conn, database: str, app_id: Any, hook: Any, trigger: Any
) -> None:
    [dl] = seed_dead_letters(db, app_id, trigger, hook, 1)

    outcomes: list[str] = []

    def retry(_: int) -> None:
        with psycopg.connect(database, autocommit=True) as conn:
            try:
                conn.execute("SELECT picloud.retry_dead_letter(%s)", (dl,))
                outcomes.append("ok")
            except psycopg.Error as exc:
                outcomes.append(str(exc.sqlstate))

    run_threads(retry, range(4))
    outcomes.sort()
    assert outcomes == ["PC410", "PC410", "PC410", "ok"]
    assert scalar(db, "SELECT count(*) FROM picloud.deliveries WHERE retry_of = %s", dl) == 1


def test_bulk_retry_takes_the_filter(db: Conn, app_id: Any, hook: Any, trigger: Any) -> None:
    old = seed_dead_letters(db, app_id, trigger, hook, 3, age="3 hours")
    recent = seed_dead_letters(db, app_id, trigger, hook, 4, age="10 minutes")
    other_source = seed_dead_letters(db, app_id, trigger, hook, 2, source="docs")
    count = "SELECT picloud.dead_letters_to_retry(%s, 'kv', now() - interval '1 hour')"
    assert scalar(db, count, app_id) == 4
    got = scalar(
        db, "SELECT picloud.retry_dead_letters(%s, 'kv', now() - interval '1 hour')", app_id
    )
    assert got == 4
    retried = {
        r["retry_of"]
        for r in db.execute("SELECT retry_of FROM picloud.deliveries WHERE retry_of IS NOT NULL")
    }
    assert retried == set(recent)
    assert scalar(db, count, app_id) == 0
    # until and the handler filter; the rest is untouched.
    assert (
        scalar(
            db,
            "SELECT picloud.retry_dead_letters(%s, until => now() - interval '4 hours')",
            app_id,
        )
        == 0
    )
    assert (
        scalar(
            db,
            "SELECT picloud.retry_dead_letters(%s, handler_id => gen_random_uuid())",
            app_id,
        )
        == 0
    )
    assert scalar(db, "SELECT picloud.retry_dead_letters(%s, 'docs')", app_id) == 2
    assert scalar(db, "SELECT picloud.retry_dead_letters(%s)", app_id) == len(old)
    assert scalar(db, "SELECT count(*) FROM picloud.dead_letters WHERE retried_at IS NULL") == 0
    assert scalar(db, "SELECT count(*) FROM picloud.deliveries") == 9
    assert other_source  # both kinds were seeded
    new = db.execute("SELECT max_attempts, attempts, status FROM picloud.deliveries").fetchall()
    assert {(r["max_attempts"], r["attempts"], r["status"]) for r in new} == {(4, 0, "pending")}


def test_bulk_retry_in_batches_is_idempotent_with_single_retry(
    db: Conn, app_id: Any, hook: Any, trigger: Any
) -> None:
    ids = seed_dead_letters(db, app_id, trigger, hook, 25)
    first = scalar(db, "SELECT picloud.retry_dead_letter(%s)", ids[5])
    batches = []
    while True:
        n = scalar(db, 'SELECT picloud.retry_dead_letters(%s, "limit" => 10)', app_id)
        batches.append(n)
        if n == 0:
            break
    assert batches == [10, 10, 4, 0]
    assert scalar(db, "SELECT count(*) FROM picloud.deliveries") == 25
    assert scalar(
        db, "SELECT retry_delivery_id FROM picloud.dead_letters WHERE id = %s", ids[5]
    ) == (first)
    with pytest.raises(psycopg.Error) as info:
        db.execute("SELECT picloud.retry_dead_letter(%s)", (ids[0],))
    assert info.value.sqlstate == "PC410"


def test_bulk_retry_of_another_app_touches_nothing(
    db: Conn, app_id: Any, hook: Any, trigger: Any
) -> None:
    seed_dead_letters(db, app_id, trigger, hook, 3)
    other = scalar(db, "INSERT INTO picloud.apps (slug, name) VALUES ('b', 'b') RETURNING id")
    assert scalar(db, "SELECT picloud.retry_dead_letters(%s)", other) == 0
    assert scalar(db, "SELECT count(*) FROM picloud.deliveries") == 0


@pytest.mark.parametrize(
    ("sql", "sqlstate"),
    [
        ("SELECT picloud.retry_dead_letters(%s, 'nope')", "22023"),
        ('SELECT picloud.retry_dead_letters(%s, "limit" => 0)', "22023"),
        (
            "SELECT picloud.retry_dead_letters(%s, since => now(), until => '2000-01-01')",
            "22023",
        ),
        ("SELECT picloud.retry_dead_letters(%s, since => 'yesterday-ish')", "22007"),
        ("SELECT picloud.dead_letters_to_retry(%s, 'nope')", "22023"),
    ],
)
def test_bulk_retry_refuses_bad_filters(
    db: Conn, app_id: Any, hook: Any, trigger: Any, sql: str, sqlstate: str
) -> None:
    seed_dead_letters(db, app_id, trigger, hook, 2)
    with pytest.raises(psycopg.Error) as info:
        db.execute(sql, (app_id,))
    assert info.value.sqlstate == sqlstate
    assert scalar(db, "SELECT count(*) FROM picloud.deliveries") == 0


def test_retry_of_a_missing_dead_letter_is_not_found(db: Conn) -> None:
    with pytest.raises(errors.NoDataFound):
        db.execute("SELECT picloud.retry_dead_letter(-1, true)")
