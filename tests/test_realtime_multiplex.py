"""GET /realtime?topic=…: several topics on one SSE stream with one resume cursor, against a
real server and database."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import psycopg
import pytest

from picloud.realtime.cursor import (
    BIGINT_MAX,
    OTHER_TOPICS,
    Cursor,
    fingerprint,
    format_stream_cursor,
    format_stream_cursor_v1,
    parse_stream_cursor,
    varint,
)
from picloud.settings import SettingsError, load_settings
from tests.fix_server import Api, Server, ServerFactory
from tests.polling import until
from tests.sse_client import Event, SseStream
from tests.test_realtime_sse import Realtime

TOPICS = ["orders", "lobby", "room"]


class Stream:
    """A multiplexed stream, and the last cursor it was sent."""

    def __init__(self, sse: SseStream) -> None:
        self.sse = sse
        self.cursor: str | None = None
        self.status = sse.status

    async def event(self) -> Event:
        """The next event that is more than a cursor alone (those only move the cursor)."""
        while True:
            event = await self.sse.next_event()
            if event.id is not None:
                self.cursor = event.id
            if event.data:
                return event

    async def messages(self, count: int) -> list[tuple[str, Any]]:
        out = []
        for _ in range(count):
            event = await self.event()
            assert event.event == "message", event
            out.append((event.json["topic"], event.json["message"]))
        return out

    def close(self) -> None:
        self.sse.close()


async def open_multi(
    rt: Realtime,
    topics: list[str],
    *,
    token: str | None = None,
    cursor: str | None = None,
    query: list[tuple[str, str]] | None = None,
) -> Stream:
    headers = {"Host": rt.host}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if cursor is not None:
        headers["Last-Event-ID"] = cursor
    response = await rt.api.session.get(
        f"{rt.server.url}/realtime",
        params=[("topic", t) for t in topics] + (query or []),
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
    )
    stream = Stream(SseStream(response))
    if response.status == 200:
        first = await stream.sse.next()
        assert first.comments[:1] == ["ok"], first
    return stream


async def multi_token(rt: Realtime, topics: list[str], **body: Any) -> str:
    reply = await rt.api.post(
        f"/api/v1/apps/{rt.app['id']}/tokens", json={"topics": topics, **body}
    )
    assert reply.status == 201, reply.raw
    assert set(reply.json) == {"token", "expires_at"}
    token: str = reply.json["token"]
    return token


async def three_topics(rt: Realtime) -> str:
    """'orders' token-mode, 'lobby' and 'room' public; a token for all three."""
    await rt.topic("orders", auth_mode="token")
    await rt.topic("lobby")
    await rt.topic("room")
    return await multi_token(rt, TOPICS)


async def publish_round(rt: Realtime, start: int, count: int) -> list[tuple[str, int]]:
    """Publish start..start+count-1, spread over the three topics in turn."""
    sent = []
    for i in range(start, start + count):
        topic = TOPICS[i % 3]
        await rt.publish(topic, i)
        sent.append((topic, i))
    return sent


def per_topic(items: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for topic, message in items:
        out.setdefault(topic, []).append(message)
    return out


@pytest.fixture
async def rt(api: Api, server: Server) -> Realtime:
    return await Realtime.create(api, server)


async def test_three_topics_in_order_and_resume_replays_exactly_the_missed(rt: Realtime) -> None:
    token = await three_topics(rt)
    stream = await open_multi(rt, TOPICS, token=token)
    sent = await publish_round(rt, 0, 12)
    got = await stream.messages(12)
    assert per_topic(got) == per_topic(sent), "every message once, in order per topic"
    assert stream.cursor is not None
    positions = parse_stream_cursor(stream.cursor, TOPICS)
    assert {t: c.seq for t, c in positions.items()} == {"orders": 4, "lobby": 4, "room": 4}
    stream.close()

    missed = await publish_round(rt, 12, 7)
    resumed = await open_multi(rt, TOPICS, token=token, cursor=stream.cursor)
    by_query = await open_multi(rt, TOPICS, token=token, query=[("last_event_id", stream.cursor)])
    assert per_topic(await resumed.messages(7)) == per_topic(missed)
    assert per_topic(await by_query.messages(7)) == per_topic(missed)
    # Then live, without a duplicate: the next event is the next publish.
    await rt.publish("lobby", 100)
    assert await resumed.messages(1) == [("lobby", 100)]
    assert await by_query.messages(1) == [("lobby", 100)]
    resumed.close()
    by_query.close()


async def test_the_opening_cursor_resumes_before_any_message(rt: Realtime) -> None:
    token = await three_topics(rt)
    await publish_round(rt, 0, 3)  # history before the stream: not replayed without a cursor
    stream = await open_multi(rt, TOPICS, token=token)
    opening = await stream.sse.next()
    assert opening.data == "" and opening.id is not None
    assert {t: c.seq for t, c in parse_stream_cursor(opening.id, TOPICS).items()} == {
        "orders": 1,
        "lobby": 1,
        "room": 1,
    }
    stream.close()
    missed = await publish_round(rt, 3, 3)
    resumed = await open_multi(rt, TOPICS, token=token, cursor=opening.id)
    assert per_topic(await resumed.messages(3)) == per_topic(missed)
    resumed.close()


async def test_a_topic_missing_from_the_cursor_starts_live(rt: Realtime) -> None:
    token = await three_topics(rt)
    stream = await open_multi(rt, ["orders", "lobby"], token=token)
    await rt.publish("orders", 1)
    assert await stream.messages(1) == [("orders", 1)]
    stream.close()
    await rt.publish("orders", 2)
    await rt.publish("room", 3)  # before 'room' joined the stream: not replayed
    # (A cursor of the older, long form names its topics: it may widen a stream.)
    assert stream.cursor is not None
    at = parse_stream_cursor(stream.cursor, ["orders", "lobby"])
    old = format_stream_cursor_v1({t: (c.epoch or 0, c.seq) for t, c in at.items()})
    wider = await open_multi(rt, TOPICS, token=token, cursor=old)
    assert await wider.messages(1) == [("orders", 2)]
    await rt.publish("room", 4)
    assert await wider.messages(1) == [("room", 4)]
    wider.close()


async def test_resume_across_the_relay_losing_its_listen_connection(
    rt: Realtime, database: str
) -> None:
    token = await three_topics(rt)
    stream = await open_multi(rt, TOPICS, token=token)
    sent = await publish_round(rt, 0, 3)
    assert per_topic(await stream.messages(3)) == per_topic(sent)
    relay = rt.relay
    with psycopg.connect(database, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'picloud relay %%'"
        ).fetchall()
        assert killed == [(True,)], "exactly the LISTEN connection"
        # Published while nobody listens: the relay back-fills them when it is back.
        for i in range(3, 9):
            conn.execute(
                "SELECT picloud.publish(%s, %s, %s::jsonb)", (rt.app["id"], TOPICS[i % 3], str(i))
            )
    await until(lambda: relay.connections == 2 and relay.listening.is_set())
    back_filled = [(TOPICS[i % 3], i) for i in range(3, 9)]
    assert per_topic(await stream.messages(6)) == per_topic(back_filled)
    # Killed stream, resumed with its cursor: nothing missed, nothing twice.
    stream.close()
    missed = await publish_round(rt, 9, 4)
    resumed = await open_multi(rt, TOPICS, token=token, cursor=stream.cursor)
    assert per_topic(await resumed.messages(4)) == per_topic(missed)
    await rt.publish("room", 50)
    assert await resumed.messages(1) == [("room", 50)]
    resumed.close()


async def test_resume_across_a_server_restart(
    server_factory: ServerFactory, http_session: aiohttp.ClientSession
) -> None:
    first = await server_factory()
    rt = await Realtime.create(Api(http_session, first.url), first)
    token = await three_topics(rt)
    stream = await open_multi(rt, TOPICS, token=token)
    sent = await publish_round(rt, 0, 6)
    assert per_topic(await stream.messages(6)) == per_topic(sent)
    cursor = stream.cursor
    stream.close()
    missed = await publish_round(rt, 6, 5)
    await first.stop()
    second = await server_factory()
    rt2 = Realtime(Api(http_session, second.url), second, rt.app)
    resumed = await open_multi(rt2, TOPICS, token=token, cursor=cursor)
    assert per_topic(await resumed.messages(5)) == per_topic(missed)
    await rt2.publish("orders", 99)
    assert await resumed.messages(1) == [("orders", 99)]
    resumed.close()


async def test_the_cursor_is_compact_and_an_old_long_cursor_still_resumes(rt: Realtime) -> None:
    token = await three_topics(rt)
    stream = await open_multi(rt, TOPICS, token=token)
    sent = await publish_round(rt, 0, 6)
    assert per_topic(await stream.messages(6)) == per_topic(sent)
    stream.close()
    cursor = stream.cursor
    assert cursor is not None and cursor.startswith("v2m.")
    at = {t: (c.epoch or 0, c.seq) for t, c in parse_stream_cursor(cursor, TOPICS).items()}
    long = format_stream_cursor_v1(at)
    # Fingerprint, smallest epoch (8 bytes), then per topic an epoch offset and a seq.
    assert len(cursor) < 50 < len(long), (cursor, long)
    missed = await publish_round(rt, 6, 5)
    # The same position in the form sent before the compact one: read as before.
    resumed = await open_multi(rt, TOPICS, token=token, cursor=long)
    assert per_topic(await resumed.messages(5)) == per_topic(missed)
    await rt.publish("lobby", 100)
    assert await resumed.messages(1) == [("lobby", 100)]
    resumed.close()
    assert resumed.cursor is not None and resumed.cursor.startswith("v2m."), "sent compact"
    # The compact cursor of the same place resumes the same way, in any ?topic= order.
    again = await open_multi(rt, TOPICS[::-1], token=token, cursor=cursor)
    assert per_topic(await again.messages(6)) == per_topic([*missed, ("lobby", 100)])
    again.close()


async def test_a_compact_cursor_of_other_topics_is_refused(rt: Realtime) -> None:
    token = await three_topics(rt)
    stream = await open_multi(rt, TOPICS, token=token)
    await rt.publish("room", 1)
    assert await stream.messages(1) == [("room", 1)]
    stream.close()
    assert stream.cursor is not None
    await rt.topic("other")
    for topics in (TOPICS[:2], [*TOPICS[:2], "other"], [*TOPICS, "other"]):
        refused = await open_multi(rt, topics, token=token, cursor=stream.cursor)
        assert refused.status == 400, topics
        error = (await refused.sse.response.json())["error"]
        assert error["code"] == "invalid_input"
        assert error["message"] == f"Last-Event-ID: {OTHER_TOPICS}"
    by_query = await open_multi(
        rt, TOPICS[:2], token=token, query=[("last_event_id", stream.cursor)]
    )
    assert by_query.status == 400


async def test_one_bad_topic_refuses_the_whole_stream_as_the_single_route(
    rt: Realtime, api: Api
) -> None:
    await rt.topic("a", auth_mode="token")
    await rt.topic("b", auth_mode="token")
    await rt.topic("c", auth_mode="token")
    await rt.topic("pub")
    await rt.topic("inside", external_subscribable=False)
    ab = await multi_token(rt, ["a", "b"])
    ok = await open_multi(rt, ["a", "b", "pub"], token=ab)
    assert ok.status == 200
    ok.close()
    for topics, token in [
        (["a", "b", "c"], ab),  # a token for {a, b} can't open c
        (["pub", "ghost"], ab),
        (["pub", "inside"], ab),
        (["a", "pub"], None),
        (["a", "pub"], "not-a-token"),
    ]:
        single = [await rt.subscribe(t, token=token) for t in topics]
        refusals = [s for s in single if s.status != 200]
        assert len(refusals) == 1, topics
        expected = (refusals[0].status, await refusals[0].response.read())
        for s in single:
            s.close()
        refused = await open_multi(rt, topics, token=token)
        # The single route's status and body, which never say which topic.
        assert (refused.status, await refused.sse.response.read()) == expected, topics
    # A token of another app opens nothing here.
    other = await Realtime.create(api, rt.server, slug="other")
    await other.topic("a", auth_mode="token")
    foreign = await multi_token(other, ["a"])
    assert (await open_multi(rt, ["a"], token=foreign)).status == 401
    # Unknown host: 404.
    rt_ghost = Realtime(api, rt.server, {"slug": "ghost", "id": rt.app["id"]})
    assert (await open_multi(rt_ghost, ["pub"])).status == 404


async def test_bad_requests_are_400(server_factory: ServerFactory, http_session: Any) -> None:
    server = await server_factory(realtime_max_topics_per_stream=2)
    rt = await Realtime.create(Api(http_session, server.url), server)
    await rt.topic("a")
    await rt.topic("b")
    await rt.topic("c")
    assert (await open_multi(rt, ["a", "b"])).status == 200
    for topics, query, cursor in [
        (["a", "b", "c"], None, None),  # more than the maximum
        ([], None, None),
        (["a", "a"], None, None),
        (["a"], None, "v1.1.1"),  # a single topic's cursor is not this stream's
        (["a"], None, "v1m.!!"),
        (["a"], None, "v1m.MS4xLmE"[:-1]),
        (["a"], None, "v1m." + "QQ"),
        (["a"], None, "v2m.!!"),
        (["a"], None, "v2m.AAAA"),
        (["a", "b"], None, format_stream_cursor({"a": (1, 1)})),  # another stream's
        (["a"], [("last_event_id", "garbage")], None),
    ]:
        reply = await open_multi(rt, topics, query=query, cursor=cursor)
        assert reply.status == 400, (topics, query, cursor)
        assert (await reply.sse.response.json())["error"]["code"] == "invalid_input"


async def test_reset_and_history_truncated_name_their_topic(rt: Realtime, database: str) -> None:
    token = await three_topics(rt)
    stream = await open_multi(rt, TOPICS, token=token)
    sent = await publish_round(rt, 0, 9)
    assert per_topic(await stream.messages(9)) == per_topic(sent)
    stream.close()
    base = f"/api/v1/apps/{rt.app['id']}/topics"
    assert (await rt.api.delete(f"{base}/room")).status == 204
    await rt.topic("room")
    await rt.publish("room", "new")
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "UPDATE picloud.messages SET published_at = now() - interval '2 days'"
            " WHERE app_id = %s AND topic = 'lobby' AND seq <= 2",
            (rt.app["id"],),
        )
        conn.execute("SELECT picloud.prune_messages('1 day')")
    positions = parse_stream_cursor(stream.cursor or "", TOPICS)
    # Resume 'lobby' from before its retained log, the others where they were.
    at = {t: (c.epoch or 0, c.seq) for t, c in positions.items()}
    at["lobby"] = (at["lobby"][0], 1)
    await rt.publish("orders", "o")
    resumed = await open_multi(rt, TOPICS, token=token, cursor=format_stream_cursor(at))
    events = [await resumed.event() for _ in range(5)]
    kinds = [(e.event, e.json.get("topic")) for e in events]
    assert ("reset", "room") in kinds
    truncated = next(e for e in events if e.event == "history_truncated")
    assert truncated.json == {"requested": 1, "oldest": 3, "topic": "lobby"}
    messages = [(e.json["topic"], e.json["message"]) for e in events if e.event == "message"]
    assert per_topic(messages) == {"lobby": [7], "orders": ["o"], "room": ["new"]}
    resumed.close()


async def test_a_multiplexed_stream_holds_one_subscriber_slot(
    server_factory: ServerFactory, http_session: Any
) -> None:
    server = await server_factory(realtime_max_subscribers_per_client=1)
    rt = await Realtime.create(Api(http_session, server.url), server)
    token = await three_topics(rt)
    stream = await open_multi(rt, TOPICS, token=token)
    assert stream.status == 200
    second = await open_multi(rt, ["lobby"])
    assert second.status == 429
    stream.close()
    await until(lambda: not rt.relay.hub.channels)
    again = await open_multi(rt, TOPICS, token=token)
    assert again.status == 200
    again.close()


async def test_mint_stream_token_bad_input(rt: Realtime) -> None:
    await three_topics(rt)
    url = f"/api/v1/apps/{rt.app['id']}/tokens"
    for body in (
        {},
        {"topics": []},
        {"topics": "orders"},
        {"topics": [1]},
        {"topics": ["bad*name"]},
        {"topics": ["orders", "orders"]},
        {"topics": ["orders"], "ttl_seconds": 0},
        {"topics": ["orders"], "ttl_seconds": 31 * 86400},
        {"topics": ["orders"], "subject": ""},
        {"topics": ["orders"], "subject": "a\nb"},
        {"topics": ["orders"], "colour": "red"},
        {"topics": ["x" * 128] * 40},
    ):
        reply = await rt.api.post(url, json=body)
        assert reply.status == 400, (body, reply.raw)
    assert (await rt.api.post(url, json={"topics": ["orders", "ghost"]})).status == 404
    listen = await rt.api.create_key(rt.app["id"], "topics:manage")
    assert (await rt.api.post(url, json={"topics": ["orders"]}, key=listen)).status == 403
    assert (await rt.api.post(url, json={"topics": ["orders"]}, key=None)).status == 401
    mint = await rt.api.create_key(rt.app["id"], "tokens:mint")
    reply = await rt.api.post(url, json={"topics": ["orders"], "subject": "u1"}, key=mint)
    assert reply.status == 201


def compact(topics: list[str], payload: bytes) -> str:
    data = fingerprint(sorted(topics)) + payload
    return "v2m." + base64.urlsafe_b64encode(data).decode().rstrip("=")


def stray_bit(text: str) -> str:
    """``text`` with its last character's lowest bit flipped: 7 bytes leave 4 unused bits
    there, so the bytes decoded are the same but the spelling is not the canonical one."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return text[:-1] + alphabet[alphabet.index(text[-1]) ^ 1]


def test_stream_cursor_round_trip_and_malformed() -> None:
    positions = {"orders.eu:v1-x_y": (3, 17), "b": (0, 0), "c": (BIGINT_MAX, BIGINT_MAX)}
    names = list(positions)
    text = format_stream_cursor(positions)
    assert text.startswith("v2m.") and "=" not in text
    parsed = parse_stream_cursor(text, names[::-1])
    assert {t: (c.epoch, c.seq) for t, c in parsed.items()} == positions
    # Fingerprint, then the smallest epoch and per topic (sorted) epoch - smallest, seq.
    assert text == compact(
        names,
        varint(0)
        + varint(0)
        + varint(0)
        + varint(BIGINT_MAX)
        + varint(BIGINT_MAX)
        + varint(3)
        + varint(17),
    )
    with pytest.raises(ValueError, match="other topics"):
        parse_stream_cursor(text, ["b", "c"])
    with pytest.raises(ValueError, match="other topics"):
        parse_stream_cursor(text, [*names, "d"])
    one = ["a"]
    for bad in [
        "v2m.",
        "v2m.A",
        "v2m.@@@@@@@@",
        compact(one, b""),  # no numbers
        compact(one, varint(1) + varint(1)),  # a seq missing
        compact(one, varint(1) + varint(1) + varint(1) + varint(1)),  # one too many
        compact(one, varint(1) + b"\x81\x80\x00" + varint(1)),  # over-long: 1 as 3 bytes
        compact(one, varint(1) + varint(1) + b"\x81"),  # cut within a number
        compact(one, varint(BIGINT_MAX + 1) + varint(0) + varint(1)),
        compact(one, varint(BIGINT_MAX) + varint(1) + varint(1)),  # epoch past bigint
        compact(one, b"\xff" * 10 + b"\x01" + varint(0) + varint(1)),
        stray_bit(compact(one, varint(1) + varint(1) + varint(1))),
    ]:
        with pytest.raises(ValueError, match="v2m"):
            parse_stream_cursor(bad, one)
    assert parse_stream_cursor(compact(one, varint(5) + varint(2) + varint(9)), one) == {
        "a": Cursor(9, 7)
    }

    # The older long form: still read (it names its topics).
    text = format_stream_cursor_v1(positions)
    assert text.startswith("v1m.") and "," not in text and "=" not in text
    parsed = parse_stream_cursor(text)
    assert {t: (c.epoch, c.seq) for t, c in parsed.items()} == positions
    over = format_stream_cursor_v1({"a": (BIGINT_MAX + 1, 1)})
    twice = "v1m." + base64.urlsafe_b64encode(b"1.1.a,2.2.a").decode().rstrip("=")
    spaced = "v1m." + base64.urlsafe_b64encode(b"1. 1.a").decode().rstrip("=")
    bad_name = "v1m." + base64.urlsafe_b64encode(b"1.1.a b").decode().rstrip("=")
    not_ascii = "v1m." + base64.urlsafe_b64encode("1.1.ü".encode()).decode().rstrip("=")
    for bad in [
        "",
        "v1m.",
        "v1.1.1",
        "5",
        "v1m.A",
        "v1m.@@",
        over,
        twice,
        spaced,
        bad_name,
        not_ascii,
    ]:
        with pytest.raises(ValueError, match="v1m"):
            parse_stream_cursor(bad)


def test_max_topics_setting() -> None:
    assert load_settings({}).realtime_max_topics_per_stream == 32
    assert (
        load_settings(
            {"PICLOUD_REALTIME_MAX_TOPICS_PER_STREAM": "3"}
        ).realtime_max_topics_per_stream
        == 3
    )
    for bad in ("0", "-1", "many", "1.5"):
        with pytest.raises(SettingsError, match="PICLOUD_REALTIME_MAX_TOPICS_PER_STREAM"):
            load_settings({"PICLOUD_REALTIME_MAX_TOPICS_PER_STREAM": bad})


async def test_deleting_one_topic_ends_the_stream(rt: Realtime) -> None:
    token = await three_topics(rt)
    stream = await open_multi(rt, TOPICS, token=token)
    await rt.publish("room", 1)
    assert await stream.messages(1) == [("room", 1)]
    base = f"/api/v1/apps/{rt.app['id']}/topics"
    assert (await rt.api.delete(f"{base}/lobby")).status == 204
    await stream.sse.expect_end(within=5)
    await until(lambda: not rt.relay.hub.channels)
    assert (await open_multi(rt, TOPICS, token=token)).status == 404
