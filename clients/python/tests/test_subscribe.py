"""Subscriptions against a real server: replay, resume across a server crash, tokens,
back-off timing (fake clock), truncated history, cancellation, the sync form."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from picloud.testing import PiCloudApp, PiCloudServer
from support import FakeClock, live_subscribers, until

from picloud_client import (
    AsyncApp,
    AsyncPiCloud,
    Backoff,
    Event,
    HistoryTruncated,
    Message,
    NotFound,
    PiCloud,
    Reset,
    Subscription,
    Unauthorized,
    Unavailable,
)

FAST = Backoff(initial=0.05, cap=0.2)


def sql_publish(conn: psycopg.Connection[Any], app_id: str, topic: str, message: Any) -> int:
    row = conn.execute(
        "SELECT picloud.publish(%s, %s, %s::jsonb) AS id", (app_id, topic, json.dumps(message))
    ).fetchone()
    assert row is not None
    return int(row["id"])


async def take(sub: Subscription[Any], n: int, within: float = 30) -> list[Event[Any]]:
    async def collect() -> list[Event[Any]]:
        return [await anext(sub) for _ in range(n)]

    return await asyncio.wait_for(collect(), within)


def seq_of(cursor: int | str | None) -> int:
    """The message number at the end of a stream cursor (``v1.<epoch>.<seq>``)."""
    return int(str(cursor).rsplit(".", 1)[-1])


def ids(events: list[Event[Any]]) -> list[int]:
    return [e.id for e in events if isinstance(e, Message)]


async def test_replay_then_live_on_the_apps_host(app: AsyncApp, picloud_app: PiCloudApp) -> None:
    await app.create_topic("news", external_subscribable=True, auth_mode="public")
    await app.publish("news", {"n": 1})
    await app.publish("news", {"n": 2})
    async with (
        AsyncPiCloud(picloud_app.server.url) as anonymous,
        anonymous.subscribe(picloud_app.host, "news", last_event_id=0) as sub,
    ):
        first = await take(sub, 2)
        await app.publish("news", {"n": 3})
        third = await take(sub, 1)
    messages = [e for e in first + third if isinstance(e, Message)]
    assert [(m.id, m.topic, m.message) for m in messages] == [
        (1, "news", {"n": 1}),
        (2, "news", {"n": 2}),
        (3, "news", {"n": 3}),
    ]
    # The resume position is the last message's opaque cursor, exactly as the server sent it.
    assert sub.last_event_id == messages[-1].cursor and sub.connects == 1
    assert str(messages[-1].cursor).startswith("v1.")


async def test_resumes_after_the_server_is_killed_and_restarted(
    app: AsyncApp, picloud_app: PiCloudApp, picloud_db: psycopg.Connection[Any]
) -> None:
    server = picloud_app.server
    await app.create_topic("log", external_subscribable=True, auth_mode="public")
    for n in range(1, 4):
        await app.publish("log", n)
    async with AsyncPiCloud(server.url) as pc:
        sub = pc.subscribe(picloud_app.host, "log", last_event_id=0, backoff=FAST)
        seen = ids(await take(sub, 3))
        server.kill()
        # Published while no server runs: only the log has them.
        for n in range(4, 7):
            sql_publish(picloud_db, picloud_app.id, "log", n)
        await asyncio.to_thread(server.start)
        seen += ids(await take(sub, 3))
        await app.publish("log", 7)
        seen += ids(await take(sub, 1))
        await sub.aclose()
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    assert sub.connects == 2


async def test_a_401_fetches_a_new_token_and_reconnects_at_once(
    app: AsyncApp, picloud_app: PiCloudApp
) -> None:
    await app.create_topic("private", external_subscribable=True, auth_mode="token")
    await app.publish("private", "secret")
    calls: list[str] = []

    async def get_token() -> str:
        token = "not-a-token" if not calls else (await app.mint_token("private"))["token"]
        calls.append(token)
        return token

    clock = FakeClock()
    async with AsyncPiCloud(picloud_app.server.url, clock=clock) as pc:
        sub = pc.subscribe(picloud_app.host, "private", get_token=get_token, last_event_id=0)
        got = await take(sub, 1)
        assert ids(got) == [1]
        assert len(calls) == 2 and calls[0] == "not-a-token"
        assert clock.sleeps == []  # the retry after a 401 does not back off
        # After a drop, a token is fetched again before the new connect.
        picloud_app.server.kill()
        await asyncio.to_thread(picloud_app.server.start)
        await app.publish("private", "again")
        assert ids(await take(sub, 1)) == [2]
        assert len(calls) >= 3
        await sub.aclose()


async def test_a_static_bad_token_raises(app: AsyncApp, picloud_app: PiCloudApp) -> None:
    await app.create_topic("private", external_subscribable=True)
    async with AsyncPiCloud(picloud_app.server.url) as pc:
        with pytest.raises(Unauthorized):
            await take(pc.subscribe(picloud_app.host, "private", token="bad"), 1)
        with pytest.raises(NotFound):
            await take(pc.subscribe(picloud_app.host, "missing"), 1)


async def test_backoff_timing_and_reset_after_a_successful_open(
    app: AsyncApp, picloud_app: PiCloudApp, picloud_db: psycopg.Connection[Any]
) -> None:
    server = picloud_app.server
    await app.create_topic("t", external_subscribable=True, auth_mode="public")
    server.kill()
    sql_publish(picloud_db, picloud_app.id, "t", "first")
    clock = FakeClock(random=0.0)

    async def start_server_after(n: int) -> None:
        if n == 7 or n == 9:
            await asyncio.to_thread(server.start)

    clock.on_sleep = start_server_after
    async with AsyncPiCloud(server.url, clock=clock) as pc:
        sub = pc.subscribe(picloud_app.host, "t", last_event_id=0)
        assert ids(await take(sub, 1)) == [1]
        assert clock.sleeps == [1, 2, 4, 8, 16, 30, 30]
        server.kill()
        sql_publish(picloud_db, picloud_app.id, "t", "second")
        assert ids(await take(sub, 1)) == [2]
        # The open in between started the back-off over.
        assert clock.sleeps[7:] == [1, 2]
        await sub.aclose()


def test_backoff_jitter_bounds() -> None:
    backoff = Backoff()
    assert [backoff.delay(a, 0.0) for a in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert [round(backoff.delay(a, 1.0), 6) for a in range(6)] == [0.8, 1.6, 3.2, 6.4, 12.8, 24]


async def test_truncated_history_is_a_typed_event(
    app: AsyncApp, picloud_app: PiCloudApp, picloud_db: psycopg.Connection[Any]
) -> None:
    await app.create_topic("t", external_subscribable=True, auth_mode="public")
    for n in range(3):
        await app.publish("t", n)
    # As retention pruning would: the first two are gone.
    picloud_db.execute(
        "DELETE FROM picloud.messages WHERE app_id = %s AND topic = 't' AND seq < 3",
        (picloud_app.id,),
    )
    async with AsyncPiCloud(picloud_app.server.url) as pc:
        sub = pc.subscribe(picloud_app.host, "t", last_event_id=0)
        events = await take(sub, 2)
        await sub.aclose()
    assert events[0] == HistoryTruncated(requested=0, oldest=3)
    assert ids(events) == [3]


async def test_cancelling_the_consumer_closes_the_stream(
    app: AsyncApp, picloud_app: PiCloudApp
) -> None:
    server = picloud_app.server
    await app.create_topic("t", external_subscribable=True, auth_mode="public")
    async with AsyncPiCloud(server.url) as pc:
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in pc.subscribe(picloud_app.host, "t", last_event_id=0):
                started.set()

        await app.publish("t", 1)
        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 10)
        assert await live_subscribers(server.url) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def none_left() -> bool:
            return await live_subscribers(server.url) == 0

        await until(none_left, within=5)


@dataclass
class Reading:
    value: int

    @classmethod
    def model_validate(cls, data: Any) -> Reading:  # the pydantic v2 entry point
        if not isinstance(data, dict) or not isinstance(data.get("value"), int):
            raise ValueError(f"not a reading: {data!r}")
        return cls(data["value"])


async def test_validate_with_a_callable_or_a_model_class(
    app: AsyncApp, picloud_app: PiCloudApp
) -> None:
    await app.create_topic("t", external_subscribable=True, auth_mode="public")
    await app.publish("t", {"value": 5})
    await app.publish("t", {"value": "x"})
    async with AsyncPiCloud(picloud_app.server.url) as pc:
        sub = pc.subscribe(picloud_app.host, "t", last_event_id=0, validate=Reading)
        first = await take(sub, 1)
        assert isinstance(first[0], Message) and first[0].message == Reading(5)
        with pytest.raises(ValueError, match="not a reading"):
            await take(sub, 1)
        assert seq_of(sub.last_event_id) == 2  # past the invalid one
        doubled = pc.subscribe(picloud_app.host, "t", last_event_id=0, validate=lambda m: m)
        assert [e.message for e in await take(doubled, 2) if isinstance(e, Message)] == [
            {"value": 5},
            {"value": "x"},
        ]
        await doubled.aclose()
    history = await app.history("t", validate=lambda m: m["value"])
    assert [m.message for m in history] == [5, "x"]


async def test_api_key_stream_for_internal_topics(app: AsyncApp) -> None:
    await app.create_topic("internal")  # not external: only an API key can follow it
    await app.publish("internal", "a")
    async with app.subscribe("internal", last_event_id=0) as sub:
        assert ids(await take(sub, 1)) == [1]


def test_sync_client_subscribes_and_publishes(picloud_app: PiCloudApp) -> None:
    app = picloud_app.client
    app.create_topic("t", external_subscribable=True, auth_mode="public")
    app.publish("t", "one")
    with (
        PiCloud(picloud_app.server.url) as pc,
        pc.subscribe(picloud_app.host, "t", last_event_id=0) as sub,
    ):
        first = next(sub)
        app.publish("t", "two")
        second = next(sub)
    assert isinstance(first, Message) and isinstance(second, Message)
    assert (first.id, first.message, second.id, second.message) == (1, "one", 2, "two")
    assert sub.last_event_id == second.cursor and seq_of(sub.last_event_id) == 2


def test_sync_server_fixture_restart(picloud_server: PiCloudServer) -> None:
    picloud_server.restart()
    with PiCloud(picloud_server.url, api_key=picloud_server.admin_key) as pc:
        assert pc.health()["status"] == "ok"


async def test_get_token_failures(app: AsyncApp, picloud_app: PiCloudApp) -> None:
    await app.create_topic("private", external_subscribable=True, auth_mode="token")
    await app.publish("private", "m")
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:  # the backend's own call to PiCloud fails for now
            raise Unavailable("try later", code="unavailable", status=503, retry_after=5)
        return (await app.mint_token("private"))["token"]

    clock = FakeClock()
    async with AsyncPiCloud(picloud_app.server.url, clock=clock) as pc:
        sub = pc.subscribe(picloud_app.host, "private", get_token=flaky, last_event_id=0)
        assert ids(await take(sub, 1)) == [1]
        await sub.aclose()
    assert clock.sleeps == [5, 5]  # max(1 s, 5 s), max(2 s, 5 s)

    def broken() -> str:
        raise KeyError("no session")

    async with AsyncPiCloud(picloud_app.server.url) as pc:
        with pytest.raises(KeyError):
            await take(pc.subscribe(picloud_app.host, "private", get_token=broken), 1)


async def test_host_none_uses_the_base_urls_own_host(
    app: AsyncApp, picloud_app: PiCloudApp
) -> None:
    # The base URL's host becomes this app's domain: an IP literal, which only an
    # instance admin may map.
    async with AsyncPiCloud(picloud_app.server.url, api_key=picloud_app.server.admin_key) as root:
        await root.app(picloud_app.id).add_domain("127.0.0.1")
    await app.create_topic("t", external_subscribable=True, auth_mode="public")
    await app.publish("t", "here")
    async with (
        AsyncPiCloud(picloud_app.server.url) as pc,
        pc.subscribe(None, "t", last_event_id=0) as sub,
    ):
        assert ids(await take(sub, 1)) == [1]


async def test_a_recreated_topic_resets_the_subscription(
    app: AsyncApp, picloud_app: PiCloudApp
) -> None:
    await app.create_topic("t", external_subscribable=True, auth_mode="public")
    for n in range(3):
        await app.publish("t", n)
    async with AsyncPiCloud(picloud_app.server.url) as pc:
        async with pc.subscribe(picloud_app.host, "t", last_event_id=0) as sub:
            assert ids(await take(sub, 3)) == [1, 2, 3]
            old = sub.last_event_id
        await app.delete_topic("t")
        await app.create_topic("t", external_subscribable=True, auth_mode="public")
        await app.publish("t", "new")
        async with pc.subscribe(picloud_app.host, "t", last_event_id=old) as again:
            events = await take(again, 2)
    assert isinstance(events[0], Reset) and (events[0].topic, events[0].oldest) == ("t", 1)
    assert isinstance(events[1], Message) and (events[1].id, events[1].message) == (1, "new")
    assert seq_of(again.last_event_id) == 1 and again.last_event_id != old
