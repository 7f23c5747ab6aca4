"""Redrive over HTTP: a second retry is 409 already_retried (naming the delivery) unless
?force=true, and the bulk POST …/dead-letters/retry with its filter, batches and bad input."""

from __future__ import annotations

from typing import Any

import aiohttp
import psycopg
import pytest

from picloud.db import Row
from tests.fix_server import Api, ServerFactory
from tests.redrive_util import seed_dead_letters
from tests.test_sql_outbox import make_trigger, make_webhook

Conn = psycopg.Connection[Row]


@pytest.fixture
async def api(server_factory: ServerFactory, http_session: aiohttp.ClientSession) -> Api:
    server = await server_factory(roles=frozenset())
    return Api(http_session, server.url)


async def _app_with_dead_letters(
    api: Api, db: Conn, n: int, **kw: Any
) -> tuple[dict[str, Any], list[int], str]:
    app = await api.create_app("redrive")
    hook = make_webhook(db, app["id"])
    trig = make_trigger(db, app["id"], hook, "kv", {}, name="t")
    ids = seed_dead_letters(db, app["id"], trig, hook, n, **kw)
    return app, ids, f"/api/v1/apps/{app['id']}/dead-letters"


def _count(db: Conn, sql: str, *params: Any) -> int:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    n: int = row["n"]
    return n


async def test_second_retry_is_409_naming_the_delivery(api: Api, db: Conn) -> None:
    app, [dl], base = await _app_with_dead_letters(api, db, 1)
    key = await api.create_key(app["id"], "dead_letters:manage")
    first = await api.post(f"{base}/{dl}/retry", key=key)
    assert first.status == 201, first.raw
    again = await api.post(f"{base}/{dl}/retry", key=key)
    assert again.status == 409, again.raw
    assert again.json["error"]["code"] == "already_retried"
    assert again.json["error"]["delivery_id"] == first.json["delivery_id"]
    assert str(first.json["delivery_id"]) in again.json["error"]["message"]
    assert _count(db, "SELECT count(*) AS n FROM picloud.deliveries") == 1
    forced = await api.post(f"{base}/{dl}/retry?force=true", key=key)
    assert forced.status == 201 and forced.json["delivery_id"] != first.json["delivery_id"]
    bad = await api.post(f"{base}/{dl}/retry?force=yes", key=key)
    assert bad.status == 400 and bad.error_code == "invalid_input"
    assert (await api.post(f"{base}/999999/retry", key=key)).status == 404
    assert _count(db, "SELECT count(*) AS n FROM picloud.deliveries") == 2


async def test_bulk_retry_counts_batches_and_is_idempotent(api: Api, db: Conn) -> None:
    app, ids, base = await _app_with_dead_letters(api, db, 30, age="2 hours")
    hook = make_webhook(db, app["id"], name="h2")
    trig = make_trigger(db, app["id"], hook, "docs", {}, name="t2")
    seed_dead_letters(db, app["id"], trig, hook, 5, source="docs")
    dry = await api.post(f"{base}/retry", json={"source": "kv", "dry_run": True})
    assert dry.status == 200 and dry.json["matching"] == 30 and dry.json["until"]
    first = await api.post(f"{base}/retry", json={"source": "kv", "limit": 20})
    assert first.status == 200, first.raw
    assert first.json == {"retried": 20, "remaining": 10}
    rest = await api.post(f"{base}/retry", json={"source": "kv", "until": dry.json["until"]})
    assert rest.json == {"retried": 10, "remaining": 0}
    assert (await api.post(f"{base}/retry", json={"source": "kv"})).json["retried"] == 0
    single = await api.post(f"{base}/{ids[0]}/retry")
    assert single.status == 409 and single.json["error"]["code"] == "already_retried"
    # Everything else (no body at all), then nothing.
    assert (await api.post(f"{base}/retry")).json == {"retried": 5, "remaining": 0}
    assert _count(db, "SELECT count(*) AS n FROM picloud.deliveries") == 35
    assert _count(db, "SELECT count(DISTINCT retry_of) AS n FROM picloud.deliveries") == 35, (
        "each dead letter retried once"
    )


async def test_bulk_retry_filters_by_time_and_handler(api: Api, db: Conn) -> None:
    app, _, base = await _app_with_dead_letters(api, db, 3, age="3 hours")
    hook = make_webhook(db, app["id"], name="h2")
    trig = make_trigger(db, app["id"], hook, "kv", {}, name="t2")
    seed_dead_letters(db, app["id"], trig, hook, 4)
    old = await api.post(f"{base}/retry", json={"until": "2000-01-01T00:00:00Z", "dry_run": True})
    assert old.json["matching"] == 0
    by_handler = await api.post(f"{base}/retry", json={"handler_id": str(hook)})
    assert by_handler.json == {"retried": 4, "remaining": 0}
    rest = await api.post(f"{base}/retry", json={"since": "2000-01-01T00:00:00+00:00"})
    assert rest.json == {"retried": 3, "remaining": 0}


@pytest.mark.parametrize(
    "body",
    [
        {"source": "nope"},
        {"source": 3},
        {"since": "not a time"},
        {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"},
        {"handler_id": "not-a-uuid"},
        {"limit": 0},
        {"limit": 10001},
        {"limit": "5"},
        {"dry_run": "yes"},
        {"whatever": 1},
        [1, 2],
    ],
)
async def test_bulk_retry_refuses_bad_input(api: Api, db: Conn, body: Any) -> None:
    _, _, base = await _app_with_dead_letters(api, db, 2)
    reply = await api.post(f"{base}/retry", json=body)
    assert reply.status == 400, reply.raw
    assert reply.json["error"]["code"] == "invalid_input"
    assert _count(db, "SELECT count(*) AS n FROM picloud.deliveries") == 0


async def test_bulk_retry_needs_the_capability(api: Api, db: Conn) -> None:
    app, _, base = await _app_with_dead_letters(api, db, 2)
    reader = await api.create_key(app["id"], "deliveries:read")
    assert (await api.post(f"{base}/retry", key=reader)).status == 403
    other = await api.create_app("other")
    manager = await api.create_key(other["id"], "dead_letters:manage")
    assert (await api.post(f"{base}/retry", key=manager)).status == 403
    assert _count(db, "SELECT count(*) AS n FROM picloud.deliveries") == 0
