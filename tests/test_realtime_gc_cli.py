"""The gc role's retention pruning, and the realtime CLI commands."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import psycopg

from picloud.realtime.gc import prune_interval
from tests.fix_server import Api, ServerFactory
from tests.procs import run_cli
from tests.test_realtime_http import make_topic


def test_prune_interval_bounds() -> None:
    assert prune_interval(86400) == 60.0
    assert prune_interval(100) == 10.0
    assert prune_interval(1) == 1.0


async def test_gc_role_prunes_messages_past_retention(
    server_factory: ServerFactory, database: str
) -> None:
    server = await server_factory(realtime_retention_sec=1)
    async with aiohttp.ClientSession() as session:
        api = Api(session, server.url)
        app = await api.create_app("gc")
        await make_topic(api, app["id"], "t")
        url = f"/api/v1/apps/{app['id']}/topics/t/messages"
        assert (await api.post(url, json={"message": 1})).status == 201
        with psycopg.connect(database, autocommit=True) as conn:
            for _ in range(100):
                row = conn.execute("SELECT count(*) FROM picloud.messages").fetchone()
                if row == (0,):
                    break
                await asyncio.sleep(0.1)
            assert row == (0,), "pruned within a few seconds"
            counter = conn.execute(
                "SELECT picloud.topic_head(app_id, name) FROM picloud.topics"
            ).fetchone()
        assert counter == (1,)
        reply = await api.post(url, json={"message": 2})
        assert reply.json["id"] == 2, "numbering continues after pruning"


def test_cli_topics_tokens_publish(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("INSERT INTO picloud.apps (slug, name) VALUES ('cli', 'CLI')")
    made = run_cli(database, "--json", "topics", "create", "cli", "room", "--external")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["auth_mode"] == "token"
    minted = run_cli(database, "--json", "tokens", "mint", "cli", "room", "--ttl", "60")
    assert minted.returncode == 0, minted.stderr
    token = json.loads(minted.stdout)["token"]
    published = run_cli(database, "--json", "publish", "cli", "room", '{"hello": 1}')
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["id"] == 1
    rotated = run_cli(database, "--json", "tokens", "rotate", "cli", "--grace", "0")
    assert rotated.returncode == 0 and json.loads(rotated.stdout)["key_version"] == 2
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT picloud.authorize_subscribe(a.id, 'room', %s), m.message"
            " FROM picloud.apps a JOIN picloud.messages m ON m.app_id = a.id",
            (token,),
        ).fetchone()
    assert row == ("unauthorized", {"hello": 1}), "rotation without grace retires the old key"

    missing = run_cli(database, "--json", "tokens", "mint", "cli", "ghost")
    assert missing.returncode == 1 and "no such topic" in missing.stderr
    bad = run_cli(database, "--json", "publish", "cli", "room", "{nope")
    assert bad.returncode == 1 and "not JSON" in bad.stderr
    bad_name = run_cli(database, "--json", "topics", "create", "cli", "a*b")
    assert bad_name.returncode == 1 and "invalid topic name" in bad_name.stderr
