"""The dispatcher's SQL API: claims, leases, completion, backoff, dead letters, retry."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row

from picloud.db import Row
from tests.test_sql_outbox import app_id, enqueue, hook, make_trigger, make_webhook
from tests.threads import run_threads

__all__ = ["app_id", "hook"]  # fixtures shared with test_sql_outbox

Conn = psycopg.Connection[Row]
MINUTE = timedelta(minutes=1)


def claim(db: Conn, worker: str, n: int = 10, lease: timedelta = MINUTE) -> list[Row]:
    return db.execute(
        "SELECT * FROM picloud.claim_deliveries(%s, %s, %s)", (worker, n, lease)
    ).fetchall()


def scalar(db: Conn, sql: str, *params: Any) -> Any:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return next(iter(row.values()))


def complete(db: Conn, delivery_id: int, worker: str) -> bool:
    ok: bool = scalar(db, "SELECT picloud.complete_delivery(%s, %s)", delivery_id, worker)
    return ok


def fail(db: Conn, delivery_id: int, worker: str, error: str = "boom") -> str:
    outcome: str = scalar(
        db, "SELECT picloud.fail_delivery(%s, %s, %s)", delivery_id, worker, error
    )
    return outcome


def attempts(db: Conn, delivery_id: int) -> list[Row]:
    return db.execute(
        "SELECT attempt, worker, outcome, error, finished_at IS NOT NULL AS finished"
        " FROM picloud.delivery_attempts WHERE delivery_id = %s ORDER BY attempt",
        (delivery_id,),
    ).fetchall()


def test_claim_returns_the_delivery_with_its_handler(db: Conn, app_id: Any, hook: Any) -> None:
    trig = make_trigger(db, app_id, hook, "kv", {}, name="t")
    enqueue(db, app_id, "kv", "k", {"type": "set", "key": "k"})
    [got] = claim(db, "w1")
    assert got["app_id"] == app_id and got["trigger_id"] == trig and got["handler_id"] == hook
    assert (got["source"], got["subject"], got["event"]) == ("kv", "k", {"type": "set", "key": "k"})
    assert (got["attempt"], got["max_attempts"], got["handler_kind"]) == (1, 3, "webhook")
    assert got["url"] == "http://127.0.0.1:9/hook" and len(got["secret"]) == 64
    assert claim(db, "w2") == [], "a leased delivery is not claimed again while its lease holds"
    assert complete(db, got["id"], "w1") is True
    assert scalar(db, "SELECT status FROM picloud.deliveries WHERE id = %s", got["id"]) == "done"
    assert attempts(db, got["id"]) == [
        {"attempt": 1, "worker": "w1", "outcome": "ok", "error": None, "finished": True}
    ]


def test_concurrent_claimers_never_share_a_delivery(
    database: str, db: Conn, app_id: Any, hook: Any
) -> None:
    make_trigger(db, app_id, hook, "kv", {}, name="t")
    db.execute(
        "SELECT picloud.enqueue_event(%s, 'kv', 'k' || i, '{\"type\": \"set\"}')"
        " FROM generate_series(1, 600) i",
        (app_id,),
    )
    got: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def worker(name: str) -> None:
        mine: list[int] = []
        with psycopg.connect(database, autocommit=True, row_factory=dict_row) as conn:
            start.wait()
            while batch := claim(conn, name, 7):
                mine += [r["id"] for r in batch]
        got[name] = mine

    run_threads(worker, [f"w{i}" for i in range(4)])
    every = [i for ids in got.values() for i in ids]
    assert len(every) == 600
    assert len(set(every)) == 600, "no delivery was claimed twice"
    assert sum(1 for ids in got.values() if ids) >= 2, "the claimers really ran side by side"


def test_expired_lease_is_reclaimed_and_the_old_worker_refused(
    db: Conn, app_id: Any, hook: Any
) -> None:
    make_trigger(db, app_id, hook, "kv", {}, name="t")
    enqueue(db, app_id, "kv", "k", {"type": "set"})
    [first] = claim(db, "old", lease=timedelta(milliseconds=30))
    assert claim(db, "new") == []
    time.sleep(0.06)  # let the lease run out
    [again] = claim(db, "new")
    assert again["id"] == first["id"] and again["attempt"] == 2
    assert complete(db, first["id"], "old") is False
    assert fail(db, first["id"], "old") == "stale"
    assert complete(db, first["id"], "new") is True
    assert [(a["attempt"], a["worker"], a["outcome"]) for a in attempts(db, first["id"])] == [
        (1, "old", "lease_expired"),
        (2, "new", "ok"),
    ]


def test_backoff_schedule(db: Conn) -> None:
    db.execute("SET picloud.dispatch_backoff_base_ms = 100")
    db.execute("SET picloud.dispatch_backoff_cap_ms = 1000")
    expected_ms = [100, 200, 400, 800, 1000, 1000, 1000]
    for n, full in enumerate(expected_ms, start=1):
        low = scalar(db, "SELECT extract(epoch FROM picloud.backoff_delay(%s, 0)) * 1000", n)
        high = scalar(db, "SELECT extract(epoch FROM picloud.backoff_delay(%s, 1)) * 1000", n)
        assert (float(low), float(high)) == (full / 2, full)
        samples = db.execute(
            "SELECT extract(epoch FROM picloud.backoff_delay(%s)) * 1000 AS ms"
            " FROM generate_series(1, 200)",
            (n,),
        ).fetchall()
        values = [float(r["ms"]) for r in samples]
        assert all(full / 2 <= v <= full for v in values)
        assert len(set(values)) > 100, "jittered"
    db.execute("RESET picloud.dispatch_backoff_base_ms")
    db.execute("RESET picloud.dispatch_backoff_cap_ms")
    assert float(scalar(db, "SELECT extract(epoch FROM picloud.backoff_delay(1, 1))")) == 1.0
    assert float(scalar(db, "SELECT extract(epoch FROM picloud.backoff_delay(30, 1))")) == 3600.0


def test_failed_delivery_is_due_after_the_backoff(db: Conn, app_id: Any, hook: Any) -> None:
    db.execute("SET picloud.dispatch_backoff_base_ms = 60000")
    make_trigger(db, app_id, hook, "kv", {}, name="t")
    enqueue(db, app_id, "kv", "k", {"type": "set"})
    [d] = claim(db, "w")
    assert fail(db, d["id"], "w", "HTTP 500") == "retry"
    row = db.execute(
        "SELECT status, attempts, last_error, lease_owner,"
        " extract(epoch FROM run_at - now()) AS wait FROM picloud.deliveries WHERE id = %s",
        (d["id"],),
    ).fetchone()
    assert row is not None
    assert (row["status"], row["attempts"], row["last_error"], row["lease_owner"]) == (
        "pending",
        1,
        "HTTP 500",
        None,
    )
    assert 29.0 <= float(row["wait"]) <= 60.0
    assert claim(db, "w") == [], "not due before its backoff"
    assert attempts(db, d["id"])[0]["outcome"] == "error"


def run_to_death(db: Conn, delivery_id: int, max_attempts: int) -> list[str]:
    outcomes = []
    for _ in range(max_attempts):
        [d] = [r for r in claim(db, "w", 100) if r["id"] == delivery_id]
        outcomes.append(fail(db, d["id"], "w", f"fail {d['attempt']}"))
    return outcomes


def test_exactly_one_dead_letter_after_max_attempts(db: Conn, app_id: Any, hook: Any) -> None:
    db.execute("SET picloud.dispatch_backoff_base_ms = 0")
    make_trigger(db, app_id, hook, "kv", {}, name="t", max_attempts=3)
    enqueue(db, app_id, "kv", "k", {"type": "set"})
    delivery_id = scalar(db, "SELECT id FROM picloud.deliveries")
    assert run_to_death(db, delivery_id, 3) == ["retry", "retry", "dead"]
    assert claim(db, "w") == []
    assert fail(db, delivery_id, "w") == "stale"
    dead = db.execute("SELECT * FROM picloud.dead_letters").fetchall()
    assert len(dead) == 1
    assert (dead[0]["delivery_id"], dead[0]["attempts"], dead[0]["last_error"]) == (
        delivery_id,
        3,
        "fail 3",
    )
    assert dead[0]["event"] == {"type": "set"} and dead[0]["source"] == "kv"
    status = scalar(db, "SELECT status FROM picloud.deliveries WHERE id = %s", delivery_id)
    assert status == "dead"


def test_expired_last_attempt_goes_dead(db: Conn, app_id: Any, hook: Any) -> None:
    make_trigger(db, app_id, hook, "kv", {}, name="t", max_attempts=1)
    enqueue(db, app_id, "kv", "k", {"type": "set"})
    [d] = claim(db, "w", lease=timedelta(milliseconds=20))
    time.sleep(0.05)  # let the lease run out
    assert claim(db, "w2") == []
    dead = "SELECT count(*) FROM picloud.dead_letters WHERE delivery_id = %s"
    assert scalar(db, dead, d["id"]) == 1
    assert complete(db, d["id"], "w") is False


def test_dead_letter_fan_out_is_one_level_deep(db: Conn, app_id: Any, hook: Any) -> None:
    db.execute("SET picloud.dispatch_backoff_base_ms = 0")
    make_trigger(db, app_id, hook, "kv", {}, name="kv", max_attempts=1)
    alarm = make_webhook(db, app_id, "alarm")
    dl_trigger = make_trigger(
        db, app_id, alarm, "dead_letter", {"match": "kv"}, name="dl", max_attempts=1
    )
    make_trigger(db, app_id, alarm, "dead_letter", {"match": "docs"}, name="dl-docs")
    enqueue(db, app_id, "kv", "k", {"type": "set", "key": "k"})
    kv_delivery = scalar(db, "SELECT id FROM picloud.deliveries")
    assert run_to_death(db, kv_delivery, 1) == ["dead"]

    fanned = db.execute("SELECT * FROM picloud.deliveries WHERE source = 'dead_letter'").fetchall()
    assert len(fanned) == 1, "one delivery for the matching dead_letter trigger"
    first_dl = scalar(db, "SELECT id FROM picloud.dead_letters")
    assert fanned[0]["trigger_id"] == dl_trigger and fanned[0]["subject"] == "kv"
    event = fanned[0]["event"]
    assert event["type"] == "dead" and event["dead_letter_id"] == first_dl
    assert (event["delivery_id"], event["source"], event["subject"]) == (kv_delivery, "kv", "k")
    assert event["event"] == {"type": "set", "key": "k"} and event["last_error"] == "fail 1"

    # The dead_letter delivery dies too: its dead letter is written, nothing more fans out.
    assert run_to_death(db, fanned[0]["id"], 1) == ["dead"]
    assert scalar(db, "SELECT count(*) FROM picloud.dead_letters") == 2
    assert scalar(db, "SELECT count(*) FROM picloud.deliveries WHERE source = 'dead_letter'") == 1
    assert scalar(db, "SELECT count(*) FROM picloud.deliveries WHERE status = 'pending'") == 0


def test_retry_dead_letter_runs_it_again(db: Conn, app_id: Any, hook: Any) -> None:
    db.execute("SET picloud.dispatch_backoff_base_ms = 0")
    make_trigger(db, app_id, hook, "kv", {}, name="t", max_attempts=2)
    enqueue(db, app_id, "kv", "k", {"type": "set"})
    old = scalar(db, "SELECT id FROM picloud.deliveries")
    run_to_death(db, old, 2)
    dl = scalar(db, "SELECT id FROM picloud.dead_letters")
    new = scalar(db, "SELECT picloud.retry_dead_letter(%s)", dl)
    assert new != old
    row = db.execute("SELECT * FROM picloud.deliveries WHERE id = %s", (new,)).fetchone()
    assert row is not None
    assert (row["status"], row["attempts"], row["max_attempts"], row["retry_of"]) == (
        "pending",
        0,
        2,
        dl,
    )
    marked = db.execute("SELECT * FROM picloud.dead_letters WHERE id = %s", (dl,)).fetchone()
    assert marked is not None
    assert marked["retry_delivery_id"] == new and marked["retried_at"] is not None
    [d] = claim(db, "w")
    assert d["id"] == new and d["event"] == {"type": "set"}
    assert complete(db, new, "w") is True
    with pytest.raises(errors.NoDataFound):
        db.execute("SELECT picloud.retry_dead_letter(-1)")


def test_release_gives_back_an_unstarted_claim(db: Conn, app_id: Any, hook: Any) -> None:
    make_trigger(db, app_id, hook, "kv", {}, name="t")
    enqueue(db, app_id, "kv", "k", {"type": "set"})
    [d] = claim(db, "w")
    assert scalar(db, "SELECT picloud.release_delivery(%s, 'other')", d["id"]) is False
    assert scalar(db, "SELECT picloud.release_delivery(%s, 'w')", d["id"]) is True
    assert attempts(db, d["id"]) == []
    [again] = claim(db, "w2")
    assert again["id"] == d["id"] and again["attempt"] == 1


def test_claim_validates_its_arguments(db: Conn) -> None:
    for args in (("", 1, MINUTE), ("w", 0, MINUTE), ("w", 1, timedelta(0))):
        with pytest.raises(errors.InvalidParameterValue):
            db.execute("SELECT * FROM picloud.claim_deliveries(%s, %s, %s)", args)


def test_operator_views(db: Conn, app_id: Any, hook: Any) -> None:
    db.execute("SET picloud.dispatch_backoff_base_ms = 0")
    make_trigger(db, app_id, hook, "kv", {}, name="t", max_attempts=1)
    for i in range(3):
        enqueue(db, app_id, "kv", f"k{i}", {"type": "set"})
    [d] = claim(db, "w", 1)
    fail(db, d["id"], "w")
    [d2] = claim(db, "w", 1)
    queue = {
        r["status"]: r
        for r in db.execute(
            "SELECT * FROM picloud.delivery_queue WHERE app_id = %s", (app_id,)
        ).fetchall()
    }
    assert {s: r["depth"] for s, r in queue.items()} == {"pending": 1, "running": 1, "dead": 1}
    assert queue["pending"]["oldest_age"] >= timedelta(0)
    summary = db.execute("SELECT * FROM picloud.dead_letter_summary").fetchall()
    assert [(r["app_id"], r["source"], r["total"], r["not_retried"]) for r in summary] == [
        (app_id, "kv", 1, 1)
    ]
    assert complete(db, d2["id"], "w")


def test_prune_deliveries_keeps_recent_and_dead(db: Conn, app_id: Any, hook: Any) -> None:
    make_trigger(db, app_id, hook, "kv", {}, name="t", max_attempts=1)
    enqueue(db, app_id, "kv", "a", {"type": "set"})
    enqueue(db, app_id, "kv", "b", {"type": "set"})
    a, b = claim(db, "w")
    complete(db, a["id"], "w")
    fail(db, b["id"], "w")
    assert scalar(db, "SELECT picloud.prune_deliveries('1 hour')") == 0
    db.execute("UPDATE picloud.deliveries SET finished_at = now() - interval '2 hours'")
    assert scalar(db, "SELECT picloud.prune_deliveries('1 hour')") == 1
    assert scalar(db, "SELECT status FROM picloud.deliveries") == "dead"
