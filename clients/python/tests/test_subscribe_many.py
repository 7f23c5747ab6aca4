"""Several topics on one stream against a real server: one connection, one cursor kept
across a killed and restarted server, per-topic order, a token for the topics."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from picloud.testing import PiCloudApp
from test_subscribe import FAST, sql_publish, take

from picloud_client import AsyncApp, AsyncPiCloud, Message, NotFound, Unauthorized


def by_topic(events: list[Any]) -> dict[str, list[tuple[int, Any]]]:
    out: dict[str, list[tuple[int, Any]]] = {}
    for e in events:
        if isinstance(e, Message):
            out.setdefault(e.topic, []).append((e.id, e.message))
    return out


async def test_one_stream_of_three_topics_resumes_across_a_restart(
    app: AsyncApp, picloud_app: PiCloudApp, picloud_db: psycopg.Connection[Any]
) -> None:
    server = picloud_app.server
    await app.create_topic("orders", external_subscribable=True, auth_mode="token")
    await app.create_topic("lobby", external_subscribable=True, auth_mode="public")
    await app.create_topic("room", external_subscribable=True, auth_mode="public")
    topics = ["orders", "lobby", "room"]
    token = (await app.mint_stream_token(topics, subject="user-1"))["token"]
    async with AsyncPiCloud(server.url) as pc:
        sub = pc.subscribe(picloud_app.host, topics, token=token, backoff=FAST)
        # The stream opens with its cursor: a drop before any message still resumes.
        next_event = asyncio.ensure_future(take(sub, 3))
        await asyncio.sleep(0.5)
        for n in range(3):
            await app.publish(topics[n], n)
        seen = await next_event
        assert str(sub.last_event_id).startswith("v2m.")
        server.kill()
        for n in range(3, 9):  # published while no server runs: only the log has them
            sql_publish(picloud_db, picloud_app.id, topics[n % 3], n)
        await asyncio.to_thread(server.start)
        seen += await take(sub, 6)
        await app.publish("lobby", 9)
        seen += await take(sub, 1)
        await sub.aclose()
    assert by_topic(seen) == {
        "orders": [(1, 0), (2, 3), (3, 6)],
        "lobby": [(1, 1), (2, 4), (3, 7), (4, 9)],
        "room": [(1, 2), (2, 5), (3, 8)],
    }
    assert sub.connects == 2, "one connection for all three topics, then one reconnect"


async def test_a_refused_topic_refuses_the_stream(app: AsyncApp, picloud_app: PiCloudApp) -> None:
    await app.create_topic("a", external_subscribable=True, auth_mode="token")
    await app.create_topic("b", external_subscribable=True, auth_mode="token")
    await app.create_topic("c", external_subscribable=True, auth_mode="token")
    token = (await app.mint_stream_token(["a", "b"]))["token"]
    async with AsyncPiCloud(picloud_app.server.url) as pc:
        with pytest.raises(Unauthorized):  # a token for {a, b} can't open c
            await take(pc.subscribe(picloud_app.host, ["a", "b", "c"], token=token), 1)
        with pytest.raises(NotFound):
            await take(pc.subscribe(picloud_app.host, ["a", "ghost"], token=token), 1)
