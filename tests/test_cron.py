"""Cron: expression parsing, the HTTP API, and the ticker's once-per-due-time firing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from picloud.cron.expressions import CronError, next_after, parse_expression
from picloud.cron.ticker import tick
from picloud.db import Row
from tests.fix_db import make_app
from tests.fix_server import Api, ServerFactory
from tests.sources_util import add_trigger, deliveries

Conn = psycopg.Connection[Row]
AConn = psycopg.AsyncConnection[Row]


@pytest.fixture
async def aconn(database: str) -> AsyncIterator[AConn]:
    async with await psycopg.AsyncConnection.connect(
        database, autocommit=True, row_factory=dict_row
    ) as conn:
        yield conn


def test_expressions_are_parsed_and_checked() -> None:
    assert parse_expression("  */5   *  * * mon-fri ") == "*/5 * * * mon-fri"
    for bad, why in [
        ("* * * *", "five fields"),
        ("* * * * * *", "five fields"),
        ("61 * * * *", "not a valid cron expression"),
        ("a b c d e", "not a valid cron expression"),
        ("0 0 31 2 *", "never matches"),
    ]:
        with pytest.raises(CronError, match=why) as info:
            parse_expression(bad)
        assert info.value.field == "expression"
    with pytest.raises(CronError) as info:
        parse_expression("* * * * *", "Mars/Olympus")
    assert info.value.field == "timezone"


def test_next_time_follows_the_time_zone() -> None:
    after = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    assert next_after("0 3 * * *", "Europe/Paris", after) == datetime(2026, 1, 11, 2, 0, tzinfo=UTC)
    assert next_after("0 3 * * *", "UTC", after) == datetime(2026, 1, 11, 3, 0, tzinfo=UTC)
    # Strictly after: a due time equal to "after" is not returned again.
    assert next_after("0 12 * * *", "UTC", after) == datetime(2026, 1, 11, 12, 0, tzinfo=UTC)


async def test_cron_http_crud_and_validation(api: Api) -> None:
    app = await api.create_app("cron-app")
    base = f"/api/v1/apps/{app['id']}/cron"
    body = {"name": "nightly", "expression": "0 3 * * *", "timezone": "Europe/Paris"}
    created = await api.post(base, json={**body, "payload": {"report": True}})
    assert created.status == 201, created.raw
    job = created.json
    assert (job["name"], job["timezone"], job["enabled"], job["payload"]) == (
        "nightly",
        "Europe/Paris",
        True,
        {"report": True},
    )
    due = datetime.fromisoformat(job["next_run_at"])
    assert due > datetime.now(UTC) and due.astimezone(UTC).hour in (1, 2)
    assert (await api.post(base, json=body)).status == 409

    for bad, field in [
        ({"expression": "* * *"}, "expression"),
        ({"expression": "99 * * * *"}, "expression"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"timezone": ""}, "timezone"),
    ]:
        reply = await api.post(base, json={**body, "name": "other", **bad})
        assert reply.status == 400, reply.raw
        assert f"'{field}'" in reply.json["error"]["message"]
    assert (
        await api.post(base, json={"name": "bad name", "expression": "* * * * *"})
    ).status == 400
    assert (await api.post(base, json={"name": "x"})).status == 400

    patched = await api.patch(
        f"{base}/nightly", json={"expression": "*/10 * * * *", "enabled": False}
    )
    assert patched.status == 200
    assert (patched.json["expression"], patched.json["enabled"]) == ("*/10 * * * *", False)
    assert (await api.patch(f"{base}/nightly", json={"expression": "nope"})).status == 400
    listed = await api.get(base)
    assert [j["name"] for j in listed.json["cron_jobs"]] == ["nightly"]
    assert (await api.get(f"{base}/nightly")).json["timezone"] == "Europe/Paris"
    assert (await api.delete(f"{base}/nightly")).status == 204
    assert (await api.get(f"{base}/nightly")).status == 404
    assert (await api.delete(f"{base}/nightly")).status == 404

    kv_key = await api.create_key(app["id"], "kv:write")
    assert (await api.get(base, key=kv_key)).status == 403
    manager = await api.create_key(app["id"], "triggers:manage")
    assert (await api.get(base, key=manager)).status == 200


async def test_tick_fires_a_due_job_once_and_catches_up_once(db: Conn, aconn: AConn) -> None:
    app = make_app(db)
    add_trigger(db, app, "cron")
    long_ago = datetime.now(UTC) - timedelta(days=3)
    db.execute(
        "INSERT INTO picloud.cron_jobs (app_id, name, expression, next_run_at) "
        "VALUES (%s, 'every-minute', '* * * * *', %s), (%s, 'later', '0 0 1 1 *', %s)",
        (app, long_ago, app, datetime.now(UTC) + timedelta(days=1)),
    )
    assert await tick(aconn) == 1
    assert await tick(aconn) == 0
    [delivery] = deliveries(db, app, "cron")
    assert delivery["subject"] == "every-minute"
    assert datetime.fromisoformat(delivery["event"]["scheduled_at"]) == long_ago
    row = db.execute(
        "SELECT next_run_at, last_run_at, now() AS now FROM picloud.cron_jobs "
        "WHERE app_id = %s AND name = 'every-minute'",
        (app,),
    ).fetchone()
    assert row is not None
    assert row["now"] < row["next_run_at"] <= row["now"] + timedelta(minutes=1)


async def test_each_due_time_fires_once_across_nodes(db: Conn, database: str) -> None:
    app = make_app(db)
    add_trigger(db, app, "cron")
    past = datetime.now(UTC) - timedelta(minutes=5)
    db.execute(
        "INSERT INTO picloud.cron_jobs (app_id, name, expression, next_run_at) "
        "SELECT %s, 'job-' || i, '* * * * *', %s FROM generate_series(1, 250) i",
        (app, past),
    )
    nodes = [
        await psycopg.AsyncConnection.connect(database, autocommit=True, row_factory=dict_row)
        for _ in range(3)
    ]
    try:
        fired = await asyncio.gather(*(tick(conn) for conn in nodes))
    finally:
        for conn in nodes:
            await conn.close()
    assert sum(fired) == 250
    subjects = [d["subject"] for d in deliveries(db, app, "cron")]
    assert len(subjects) == len(set(subjects)) == 250


async def test_jobs_from_psql_are_scheduled_or_disabled(db: Conn, aconn: AConn) -> None:
    app = make_app(db)
    add_trigger(db, app, "cron")
    db.execute(
        "INSERT INTO picloud.cron_jobs (app_id, name, expression) "
        "VALUES (%s, 'fresh', '*/5 * * * *'), (%s, 'broken', '61 * * * *')",
        (app, app),
    )
    db.execute(
        "INSERT INTO picloud.cron_jobs (app_id, name, expression, timezone, next_run_at) "
        "VALUES (%s, 'zoneless', '* * * * *', 'Nowhere/Land', now())",
        (app,),
    )
    assert await tick(aconn) == 0
    rows = {
        r["name"]: r
        for r in db.execute(
            "SELECT name, enabled, next_run_at, last_error FROM picloud.cron_jobs "
            "WHERE app_id = %s",
            (app,),
        )
    }
    assert rows["fresh"]["enabled"] and rows["fresh"]["next_run_at"] is not None
    assert not rows["broken"]["enabled"] and "expression" in rows["broken"]["last_error"]
    assert not rows["zoneless"]["enabled"] and "timezone" in rows["zoneless"]["last_error"]
    assert deliveries(db, app, "cron") == []


async def test_ticker_role_skips_its_first_tick(server_factory: ServerFactory, db: Conn) -> None:
    app = make_app(db)
    add_trigger(db, app, "cron")
    db.execute(
        "INSERT INTO picloud.cron_jobs (app_id, name, expression, next_run_at) "
        "VALUES (%s, 'due', '* * * * *', now() - interval '1 minute')",
        (app,),
    )
    started = time.monotonic()
    await server_factory(roles=frozenset({"cron"}), cron_tick_interval_ms=400)
    async with asyncio.timeout(10):
        while not deliveries(db, app, "cron"):  # noqa: ASYNC110 (polling the database)
            await asyncio.sleep(0.02)
    assert time.monotonic() - started >= 0.4
