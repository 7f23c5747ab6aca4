"""SSE: GET /realtime/topics/{topic} against a real server and database (SPEC §6)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import psycopg
import pytest

from picloud.realtime.cursor import parse_cursor
from picloud.realtime.relay import Relay
from tests.fix_server import Api, Server, ServerFactory
from tests.polling import until
from tests.sse_client import SseStream, open_stream
from tests.test_realtime_http import make_topic


class Realtime:
    """An app with topics on a running server, and helpers to publish and subscribe."""

    def __init__(self, api: Api, server: Server, app: dict[str, Any]) -> None:
        self.api = api
        self.server = server
        self.app = app
        self.host = f"{app['slug']}.localhost:{server.port}"

    @classmethod
    async def create(cls, api: Api, server: Server, slug: str = "rt") -> Realtime:
        return cls(api, server, await api.create_app(slug))

    async def topic(self, name: str, **flags: Any) -> None:
        flags.setdefault("external_subscribable", True)
        flags.setdefault("auth_mode", "public")
        await make_topic(self.api, self.app["id"], name, **flags)

    async def publish(self, topic: str, message: Any) -> int:
        reply = await self.api.post(
            f"/api/v1/apps/{self.app['id']}/topics/{topic}/messages", json={"message": message}
        )
        assert reply.status == 201, reply.raw
        seq: int = reply.json["id"]
        return seq

    async def token(self, topic: str) -> str:
        reply = await self.api.post(f"/api/v1/apps/{self.app['id']}/topics/{topic}/tokens", json={})
        assert reply.status == 201, reply.raw
        token: str = reply.json["token"]
        return token

    async def subscribe(self, topic: str, **kw: Any) -> SseStream:
        return await open_stream(self.api.session, self.server.url, self.host, topic, **kw)

    @property
    def relay(self) -> Relay:
        relay = self.server.state.roles.relay
        assert relay is not None
        return relay


@pytest.fixture
async def rt(api: Api, server: Server) -> Realtime:
    return await Realtime.create(api, server)


async def test_handshake_statuses_and_headers(rt: Realtime) -> None:
    await rt.topic("open")
    await rt.topic("locked", auth_mode="token")
    await rt.topic("internal", external_subscribable=False)
    session, url = rt.api.session, rt.server.url

    unknown = await open_stream(session, url, f"nope.localhost:{rt.server.port}", "open")
    assert (unknown.status, (await unknown.response.json())["error"]["code"]) == (404, "not_found")
    internal = await rt.subscribe("internal", token=await rt.token("internal"))
    missing = await rt.subscribe("missing")
    assert internal.status == missing.status == 404
    assert await internal.response.read() == await missing.response.read(), "indistinguishable"
    for kw in ({}, {"token": "garbage"}, {"token": await rt.token("open")}):
        bad = await rt.subscribe("locked", **kw)
        assert bad.status == 401, kw
        assert (await bad.response.json())["error"] == {
            "code": "unauthorized",
            "message": "not authorized to subscribe",
        }
    bad_resume = await rt.subscribe("open", headers={"Last-Event-ID": "x1"})
    assert bad_resume.status == 400

    public = await rt.subscribe("open")
    assert public.status == 200
    assert public.headers["Content-Type"] == "text/event-stream"
    assert public.headers["Cache-Control"] == "no-cache"
    assert public.headers["X-Accel-Buffering"] == "no"
    token = await rt.token("locked")
    by_header = await rt.subscribe("locked", token=token)
    by_query = await rt.subscribe("locked", query={"token": token})
    assert by_header.status == by_query.status == 200
    # The app's custom domain works as well as <slug>.<base domain>.
    await rt.api.post(f"/api/v1/apps/{rt.app['id']}/domains", json={"host": "rt.example.com"})
    custom = await open_stream(session, url, "RT.example.com", "open")
    assert custom.status == 200

    await rt.publish("locked", {"hello": "token"})
    await rt.publish("open", {"hello": "public"})
    event = await by_header.next_event()
    assert (event.seq, event.event) == (1, "message")
    assert event.json["topic"] == "locked" and event.json["message"] == {"hello": "token"}
    assert set(event.json) == {"topic", "message", "published_at"}
    assert (await by_query.messages(1)) == [(1, {"hello": "token"})]
    assert (await public.messages(1)) == [(1, {"hello": "public"})]
    assert (await custom.messages(1)) == [(1, {"hello": "public"})]
    for stream in (public, by_header, by_query, custom):
        stream.close()


async def test_order_and_published_at_match_the_log(rt: Realtime, database: str) -> None:
    await rt.topic("t")
    stream = await rt.subscribe("t")
    published = [await rt.publish("t", {"n": i}) for i in range(20)]
    received = await stream.messages(20)
    assert received == [(seq, {"n": i}) for i, seq in enumerate(published)]
    history = await rt.api.get(f"/api/v1/apps/{rt.app['id']}/topics/t/messages?limit=1")
    reply = await rt.api.post(
        f"/api/v1/apps/{rt.app['id']}/topics/t/messages", json={"message": "last"}
    )
    event = await stream.next_event()
    assert event.seq == 21 == reply.json["id"]
    assert event.json["published_at"] == reply.json["published_at"], "one published_at"
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT published_at FROM picloud.messages WHERE seq = 21 AND topic = 't'"
        ).fetchone()
    assert row is not None
    from datetime import datetime

    assert datetime.fromisoformat(event.json["published_at"]) == row[0]
    assert history.json["messages"][0]["id"] == 1
    stream.close()


async def test_heartbeat_with_a_short_interval(server_factory: ServerFactory) -> None:
    server = await server_factory(realtime_heartbeat_sec=0.2)
    async with aiohttp.ClientSession() as session:
        rt = await Realtime.create(Api(session, server.url), server)
        await rt.topic("t")
        stream = await rt.subscribe("t")
        started = time.monotonic()
        beat = await stream.next(within=5)
        assert beat.event == "comment" and beat.comments == ["heartbeat"]
        assert time.monotonic() - started < 2
        await rt.publish("t", 1)
        # Heartbeats and messages interleave on one stream.
        assert (await stream.messages(1)) == [(1, 1)]
        assert (await stream.next(within=5)).comments == ["heartbeat"]
        stream.close()


async def test_resume_by_last_event_id_replays_exactly_the_missed(rt: Realtime) -> None:
    await rt.topic("t")
    first = await rt.subscribe("t")
    for i in range(1, 6):
        await rt.publish("t", i)
    assert [seq for seq, _ in await first.messages(5)] == [1, 2, 3, 4, 5]
    first.close()
    # Missed while away: 6..8.
    for i in range(6, 9):
        await rt.publish("t", i)
    resumed = await rt.subscribe("t", headers={"Last-Event-ID": "5"})
    by_query = await rt.subscribe("t", query={"last_event_id": "7"})
    await rt.publish("t", 9)
    assert await resumed.messages(4) == [(6, 6), (7, 7), (8, 8), (9, 9)]
    assert await by_query.messages(2) == [(8, 8), (9, 9)]
    # Nothing more: the next event is the next publish, not a duplicate.
    await rt.publish("t", 10)
    assert await resumed.messages(1) == [(10, 10)]
    assert await by_query.messages(1) == [(10, 10)]
    # Resuming at the head replays nothing; from 0 replays everything.
    at_head = await rt.subscribe("t", headers={"Last-Event-ID": "10"})
    from_zero = await rt.subscribe("t", headers={"Last-Event-ID": "0"})
    await rt.publish("t", 11)
    assert await at_head.messages(1) == [(11, 11)]
    assert [s for s, _ in await from_zero.messages(11)] == list(range(1, 12))
    for s in (resumed, by_query, at_head, from_zero):
        s.close()


async def test_resume_older_than_the_log_says_history_truncated(
    rt: Realtime, database: str
) -> None:
    await rt.topic("t")
    for i in range(1, 6):
        await rt.publish("t", i)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "UPDATE picloud.messages SET published_at = now() - interval '2 days' WHERE seq <= 3"
        )
        conn.execute("SELECT picloud.prune_messages('1 day')")
    stream = await rt.subscribe("t", headers={"Last-Event-ID": "1"})
    event = await stream.next_event()
    assert event.event == "history_truncated"
    assert event.json == {"requested": 1, "oldest": 4}
    assert await stream.messages(2) == [(4, 4), (5, 5)]
    # Exactly at the edge of the retained log: nothing is missing, no event.
    edge = await rt.subscribe("t", headers={"Last-Event-ID": "3"})
    await rt.publish("t", 6)
    assert await edge.messages(3) == [(4, 4), (5, 5), (6, 6)]
    stream.close()
    edge.close()


async def test_app_a_never_reaches_app_b(api: Api, server: Server) -> None:
    a = await Realtime.create(api, server, "app-a")
    b = await Realtime.create(api, server, "app-b")
    await a.topic("news")
    await b.topic("news")
    on_b = await b.subscribe("news")
    on_a = await a.subscribe("news")
    # The host decides the app: B's host never streams A's topic.
    for i in range(3):
        await a.publish("news", f"a{i}")
    await b.publish("news", "b0")
    assert await on_b.messages(1) == [(1, "b0")]
    assert await on_a.messages(3) == [(1, "a0"), (2, "a1"), (3, "a2")]
    # A's token is refused on B's host.
    await a.api.patch(f"/api/v1/apps/{a.app['id']}/topics/news", json={"auth_mode": "token"})
    await b.api.patch(f"/api/v1/apps/{b.app['id']}/topics/news", json={"auth_mode": "token"})
    assert (await b.subscribe("news", token=await a.token("news"))).status == 401
    on_a.close()
    on_b.close()


async def test_topic_delete_and_narrowing_end_streams(rt: Realtime) -> None:
    await rt.topic("doomed")
    await rt.topic("narrowed")
    doomed = await rt.subscribe("doomed")
    narrowed = await rt.subscribe("narrowed")
    await rt.publish("doomed", 1)
    assert await doomed.messages(1) == [(1, 1)]
    base = f"/api/v1/apps/{rt.app['id']}/topics"
    assert (await rt.api.delete(f"{base}/doomed")).status == 204
    await doomed.expect_end(within=5)
    assert (await rt.subscribe("doomed")).status == 404
    reply = await rt.api.patch(f"{base}/narrowed", json={"external_subscribable": False})
    assert reply.status == 200
    await narrowed.expect_end(within=5)
    assert rt.relay.hub.channels == {}


async def test_no_relay_on_this_node_is_503(server_factory: ServerFactory) -> None:
    server = await server_factory(roles=frozenset())
    async with aiohttp.ClientSession() as session:
        rt = await Realtime.create(Api(session, server.url), server)
        await rt.topic("t")
        stream = await rt.subscribe("t")
        assert stream.status == 503


def _raw_slow_subscriber(port: int, host: str, topic: str) -> socket.socket:
    """A subscriber that reads nothing, with a tiny receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /realtime/topics/{topic} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


async def test_slow_reader_never_delays_a_fast_one(
    server_factory: ServerFactory, database: str
) -> None:
    server = await server_factory(realtime_broadcast_capacity=4)
    count, size = 120, 50_000
    async with aiohttp.ClientSession() as session:
        rt = await Realtime.create(Api(session, server.url), server)
        await rt.topic("t")
        fast = await rt.subscribe("t")
        slow = _raw_slow_subscriber(server.port, rt.host, "t")
        slow.setblocking(False)
        hub = rt.relay.hub
        await until(lambda: hub.subscriber_count() == 2)
        body = "x" * size
        with psycopg.connect(database, autocommit=True) as conn:
            for _ in range(count):
                conn.execute(
                    "SELECT picloud.publish(%s, 't', to_jsonb(%s::text))", (rt.app["id"], body)
                )
        # The fast reader gets everything, in order, while the slow one reads nothing.
        got = await fast.messages(count, within=30)
        assert [seq for seq, _ in got] == list(range(1, count + 1))
        assert all(m == body for _, m in got)
        # The slow reader was cut off once it fell more than `capacity` frames behind ...
        assert hub.overflows == 1 and hub.subscriber_count() == 1
        loop = asyncio.get_running_loop()
        received = b""
        async with asyncio.timeout(10):
            while True:
                try:
                    data = await loop.sock_recv(slow, 1 << 20)
                except ConnectionResetError:
                    break
                if not data:
                    break
                received += data
        slow.close()
        # ... and resumes where it stopped, from the log, with nothing lost.
        text = received.decode(errors="replace")
        ids = [parse_cursor(line[4:]).seq for line in text.split("\n") if line.startswith("id: ")]
        last = ids[-1] if ids else 0
        assert last < count
        resumed = await rt.subscribe("t", headers={"Last-Event-ID": str(last)})
        rest = await resumed.messages(count - last, within=30)
        assert [seq for seq, _ in rest] == list(range(last + 1, count + 1))
        resumed.close()
        fast.close()


async def test_relay_survives_losing_its_listen_connection(rt: Realtime, database: str) -> None:
    await rt.topic("t")
    stream = await rt.subscribe("t")
    await rt.publish("t", 1)
    assert await stream.messages(1) == [(1, 1)]
    relay = rt.relay
    assert relay.connections == 1
    with psycopg.connect(database, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'picloud relay %%'"
        ).fetchall()
        assert killed == [(True,)], "exactly the LISTEN connection"
        # Published while the relay has no LISTEN connection: NOTIFYs nobody hears.
        for i in range(2, 7):
            conn.execute("SELECT picloud.publish(%s, 't', %s::jsonb)", (rt.app["id"], str(i)))
    await until(lambda: relay.connections == 2 and relay.listening.is_set())
    await rt.publish("t", 7)
    assert await stream.messages(6) == [(i, i) for i in range(2, 8)]
    await rt.publish("t", 8)
    assert await stream.messages(1) == [(8, 8)], "no duplicates after the back-fill"
    # The connection the relay reads messages on can die too.
    with psycopg.connect(database, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database()"
            " AND application_name LIKE 'picloud relay-reader %%'"
        ).fetchall()
        assert killed == [(True,)]
    await rt.publish("t", 9)
    assert await stream.messages(1) == [(9, 9)]
    metrics = (await rt.api.get("/metrics", key=None)).raw.decode()
    assert "picloud_realtime_listen_connections 2.0" in metrics
    assert "picloud_realtime_subscribers 1.0" in metrics
    stream.close()


async def test_subscriber_counts_reach_the_operators_view(rt: Realtime, database: str) -> None:
    await rt.topic("busy")
    await rt.topic("quiet")
    streams = [await rt.subscribe("busy") for _ in range(3)]
    await rt.relay.report_presence()

    def view() -> dict[str, tuple[int, int]]:
        with psycopg.connect(database) as conn:
            rows = conn.execute(
                "SELECT topic, subscribers, nodes FROM picloud.topic_subscribers WHERE app_id = %s",
                (rt.app["id"],),
            ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    assert view() == {"busy": (3, 1), "quiet": (0, 0)}
    for s in streams:
        s.close()
    await until(lambda: rt.relay.hub.subscriber_count() == 0)
    await rt.relay.report_presence()
    assert view() == {"busy": (0, 0), "quiet": (0, 0)}


async def test_rolled_back_publish_never_reaches_a_subscriber(rt: Realtime, database: str) -> None:
    await rt.topic("t")
    stream = await rt.subscribe("t")
    with psycopg.connect(database) as conn:
        conn.execute("SELECT picloud.publish(%s, 't', '\"doomed\"')", (rt.app["id"],))
        conn.rollback()
        conn.execute("SELECT picloud.publish(%s, 't', '\"kept\"')", (rt.app["id"],))
        conn.commit()
    # Position 1 was drawn and rolled back: a gap the relay settles, then delivers 2.
    assert await stream.messages(1) == [(2, "kept")]
    stream.close()


async def test_relay_ignores_malformed_notifications(rt: Realtime, database: str) -> None:
    await rt.topic("t")
    stream = await rt.subscribe("t")
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("SELECT pg_notify('picloud_realtime', 'garbage')")
        conn.execute("SELECT pg_notify('picloud_realtime_control', 'nonsense')")
        conn.execute(f"SELECT pg_notify('picloud_realtime', '{rt.app['id']} x t')")
    await rt.publish("t", 1)
    assert await stream.messages(1) == [(1, 1)]
    assert rt.relay.connections == 1, "the relay did not restart"
    stream.close()
