"""Presence over HTTP against a real server and database: the topic flag, tokens carrying
info, ``event: presence`` frames on single and multiplexed streams, the two presence
routes, bad input and app isolation. (Across two processes: test_presence_nodes.py.)"""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp
import pytest

from tests.fix_server import Api, Server
from tests.forgery import forged
from tests.sse_client import Event, SseStream, open_stream
from tests.test_realtime_multiplex import multi_token, open_multi
from tests.test_realtime_sse import Realtime


async def presence_on(rt: Realtime, topic: str) -> None:
    reply = await rt.api.patch(
        f"/api/v1/apps/{rt.app['id']}/topics/{topic}", json={"presence": True}
    )
    assert reply.status == 200, reply.raw
    assert reply.json["presence"] is True
    await settled(rt, topic)


async def settled(rt: Realtime, topic: str) -> None:
    """Changing the flag ends the topic's streams when the relays hear of it (on commit, a
    moment later): a probe stream that ends (or outlives that moment) shows it was heard,
    so the test's own streams are not ended by it."""
    probe = await rt.subscribe(topic)
    with contextlib.suppress(TimeoutError):
        await probe.expect_end(within=0.5)
    probe.close()


async def presence_events(stream: SseStream, count: int, within: float = 10) -> list[Any]:
    """The next ``count`` presence events as (event, subject, info), skipping other events."""
    out = []
    while len(out) < count:
        event = await stream.next_event(within)
        if event.event == "presence":
            data = event.json
            out.append((data["event"], data["subject"], data["info"]))
    return out


async def no_presence_event(stream: SseStream, within: float = 1.0) -> None:
    try:
        while True:
            event = await stream.next_event(within)
            assert event.event != "presence", event.data
    except TimeoutError:
        return


@pytest.fixture
async def rt(api: Api, server: Server) -> Realtime:
    rt = await Realtime.create(api, server)
    await rt.topic("room")
    await presence_on(rt, "room")
    return rt


async def subject_token(rt: Realtime, subject: str, info: Any = None, topics: Any = None) -> str:
    body: dict[str, Any] = {"subject": subject}
    if info is not None:
        body["info"] = info
    return await multi_token(rt, topics or ["room"], **body)


async def who(rt: Realtime) -> list[tuple[str, Any, int]]:
    reply = await rt.api.get(f"/api/v1/apps/{rt.app['id']}/topics/room/presence")
    assert reply.status == 200, reply.raw
    assert set(reply.json) == {"subjects"}
    for s in reply.json["subjects"]:
        assert set(s) == {"subject", "info", "connected_at", "connections"}
    return [(s["subject"], s["info"], s["connections"]) for s in reply.json["subjects"]]


async def test_join_leave_once_per_subject_and_who_is_here(rt: Realtime) -> None:
    watcher = await rt.subscribe("room")  # anonymous: sees presence, is not present
    alice = await subject_token(rt, "alice", {"name": "Alice", "n": 1})
    tab1 = await rt.subscribe("room", token=alice)
    assert await presence_events(watcher, 1) == [("joined", "alice", {"name": "Alice", "n": 1})]
    assert await presence_events(tab1, 1) == [("joined", "alice", {"name": "Alice", "n": 1})]
    tab2 = await rt.subscribe("room", token=alice)
    # A new stream is told who is already here; the second tab is not a second join.
    assert await presence_events(tab2, 1) == [("joined", "alice", {"name": "Alice", "n": 1})]
    await no_presence_event(watcher)
    assert await who(rt) == [("alice", {"name": "Alice", "n": 1}, 2)]
    # The subscriber's view on the app host, with a subscriber token.
    reply = await rt.api.session.get(
        f"{rt.server.url}/realtime/presence/room",
        headers={"Host": rt.host, "Authorization": f"Bearer {alice}"},
    )
    assert reply.status == 200
    body = await reply.json()
    assert [(s["subject"], s["connections"]) for s in body["subjects"]] == [("alice", 2)]
    tab1.close()
    await no_presence_event(watcher)
    assert await who(rt) == [("alice", {"name": "Alice", "n": 1}, 1)]
    tab2.close()
    assert await presence_events(watcher, 1) == [("left", "alice", {"name": "Alice", "n": 1})]
    assert await who(rt) == []
    # A token without a subject is anonymous.
    anon = await rt.subscribe("room", token=await multi_token(rt, ["room"]))
    await no_presence_event(watcher)
    assert await who(rt) == []
    anon.close()


async def test_multiplexed_stream_of_token_public_and_presence_topics(rt: Realtime) -> None:
    await rt.topic("orders", auth_mode="token")
    await rt.topic("lobby")
    topics = ["orders", "lobby", "room"]
    token = await subject_token(rt, "bob", {"role": "buyer"}, topics)
    stream = await open_multi(rt, topics, token=token)
    events: list[Event] = []
    for i in range(3):
        await rt.publish(topics[i], i)
    while len(events) < 4:
        event = await stream.sse.next_event()
        if event.data:
            events.append(event)
    presence = [e for e in events if e.event == "presence"]
    messages = [e for e in events if e.event == "message"]
    assert [(e.json["topic"], e.json["event"], e.json["subject"]) for e in presence] == [
        ("room", "joined", "bob")
    ]
    assert presence[0].id is None, "presence frames leave the stream's cursor alone"
    # Order is per topic; the three topics interleave as the relay reads them.
    assert sorted((e.json["topic"], e.json["message"]) for e in messages) == [
        ("lobby", 1),
        ("orders", 0),
        ("room", 2),
    ]
    assert await who(rt) == [("bob", {"role": "buyer"}, 1)]
    # Resuming with the cursor replays no presence and no message twice; the new stream is
    # told who is here (bob again: the first stream is still open).
    cursor = messages[-1].id
    again = await open_multi(rt, topics, token=token, cursor=cursor)
    assert await presence_events(again.sse, 1) == [("joined", "bob", {"role": "buyer"})]
    stream.close()
    await no_presence_event(again.sse)
    assert await who(rt) == [("bob", {"role": "buyer"}, 1)]
    again.close()


async def test_a_topic_created_with_presence_tracks_who_is_here(rt: Realtime) -> None:
    await rt.topic("born", presence=True)  # POST .../topics {"presence": true}
    base = f"/api/v1/apps/{rt.app['id']}/topics/born"
    assert (await rt.api.get(base)).json["presence"] is True
    ada = await subject_token(rt, "ada", topics=["born"])
    stream = await rt.subscribe("born", token=ada)
    assert await presence_events(stream, 1) == [("joined", "ada", None)]
    reply = await rt.api.get(f"{base}/presence")
    assert [s["subject"] for s in reply.json["subjects"]] == ["ada"]
    stream.close()


async def test_presence_flag_and_token_info_refuse_bad_input(rt: Realtime) -> None:
    base = f"/api/v1/apps/{rt.app['id']}"
    for body in ({"presence": "yes"}, {"presence": None}, {"presence": 1}):
        reply = await rt.api.patch(f"{base}/topics/room", json=body)
        assert reply.status == 400, (body, reply.raw)
    for flag in ("yes", 1, {}):
        reply = await rt.api.post(f"{base}/topics", json={"name": "x", "presence": flag})
        assert (reply.status, reply.error_code) == (400, "invalid_input"), (flag, reply.raw)
        assert "'presence' must be true or false" in reply.json["error"]["message"]
    assert (await rt.api.get(f"{base}/topics/x")).status == 404  # nothing half-written
    for extra in (
        {"subject": "a", "info": [1]},
        {"subject": "a", "info": "text"},
        {"subject": "a", "info": {"big": "x" * 1100}},
        {"info": {"name": "nobody"}},
    ):
        reply = await rt.api.post(f"{base}/tokens", json={"topics": ["room"], **extra})
        assert reply.status == 400, (extra, reply.raw)
        assert reply.error_code in ("bad_request", "invalid_input")
    # A topic without presence: 409 on both routes, never an empty list that looks live.
    await rt.topic("plain")
    reply = await rt.api.get(f"{base}/topics/plain/presence")
    assert reply.status == 409
    hosted = await rt.api.session.get(
        f"{rt.server.url}/realtime/presence/plain", headers={"Host": rt.host}
    )
    assert hosted.status == 409
    assert (await rt.api.get(f"{base}/topics/missing/presence")).status == 404
    assert (await rt.api.get(f"{base}/topics/bad%20name/presence")).status == 400
    assert (await rt.api.get(f"{base}/topics/room/presence", key=None)).status == 401
    assert (await rt.api.get(f"{base}/topics/room/presence", key="nope")).status == 401
    reader = await rt.api.create_key(rt.app["id"], "topics:publish")
    assert (await rt.api.get(f"{base}/topics/room/presence", key=reader)).status == 403
    # Turning presence off ends the topic's streams (clients reconnect in the new mode).
    stream = await rt.subscribe("room")
    reply = await rt.api.patch(f"{base}/topics/room", json={"presence": False})
    assert reply.status == 200 and reply.json["presence"] is False
    await stream.expect_end()


async def test_presence_never_crosses_apps(rt: Realtime, api: Api, server: Server) -> None:
    other = await Realtime.create(api, server, "other")
    await other.topic("room", auth_mode="token")
    await presence_on(other, "room")
    theirs = await subject_token(other, "alice", {"app": "other"})
    ours = await subject_token(rt, "alice", {"app": "ours"})
    watch_ours = await rt.subscribe("room")
    watch_theirs = await other.subscribe("room", token=await subject_token(other, "eve"))
    assert await presence_events(watch_theirs, 1) == [("joined", "eve", None)]
    their_alice = await other.subscribe("room", token=theirs)
    assert await presence_events(watch_theirs, 1) == [("joined", "alice", {"app": "other"})]
    await no_presence_event(watch_ours)
    our_alice = await rt.subscribe("room", token=ours)
    assert await presence_events(watch_ours, 1) == [("joined", "alice", {"app": "ours"})]
    await no_presence_event(watch_theirs)
    # Another app's token opens nothing here, and lists nothing here.
    assert (await rt.subscribe("room", token=theirs)).status in (200,)  # public topic
    assert await who(rt) == [("alice", {"app": "ours"}, 1)]
    hosted = await api.session.get(
        f"{server.url}/realtime/presence/room",
        headers={"Host": other.host, "Authorization": f"Bearer {ours}"},
    )
    assert hosted.status == 401
    other_key = await api.create_key(other.app["id"], "topics:manage")
    reply = await api.get(f"/api/v1/apps/{rt.app['id']}/topics/room/presence", key=other_key)
    assert reply.status == 403
    for s in (their_alice, our_alice, watch_ours, watch_theirs):
        s.close()


async def test_public_presence_topic_with_a_bad_token_is_anonymous(rt: Realtime) -> None:
    watcher = await rt.subscribe("room")
    stale = await subject_token(rt, "mallory")
    forgery = forged(stale)
    stream = await open_stream(
        rt.api.session, rt.server.url, rt.host, "room", token=forgery, query=None
    )
    assert stream.status == 200  # public topic: the stream opens, but nobody joins
    await no_presence_event(watcher)
    assert await who(rt) == []
    stream.close()
    watcher.close()


async def test_http10_stream_gets_unchunked_presence_frames(rt: Realtime) -> None:
    token = await subject_token(rt, "carol")
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, version=aiohttp.HttpVersion10) as s:
        resp = await s.get(
            f"{rt.server.url}/realtime/topics/room",
            headers={"Host": rt.host, "Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        stream = SseStream(resp)
        assert (await stream.next()).comments[:1] == ["ok"]
        assert await presence_events(stream, 1) == [("joined", "carol", None)]
        stream.close()


async def test_operator_stream_of_several_topics_with_an_api_key(rt: Realtime) -> None:
    await rt.topic("internal", external_subscribable=False)
    base = f"/api/v1/apps/{rt.app['id']}/stream"
    session, url = rt.api.session, rt.server.url

    async def status(query: list[tuple[str, str]], key: str | None = "admin") -> int:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        if key == "admin":
            headers = {"Authorization": f"Bearer {rt.api.key}"}
        async with session.get(url + base, params=query, headers=headers) as resp:
            return resp.status

    assert await status([]) == 400
    assert await status([("topic", "room"), ("topic", "room")]) == 400
    assert await status([("topic", f"t{i}") for i in range(33)]) == 400
    assert await status([("topic", "room"), ("topic", "missing")]) == 404
    assert await status([("topic", "room")], key=None) == 401
    assert await status([("topic", "room")], key="pck_nope") == 401
    reader = await rt.api.create_key(rt.app["id"], "topics:publish")
    assert await status([("topic", "room")], key=reader) == 403
    other = await rt.api.create_app("elsewhere")
    theirs = await rt.api.create_key(other["id"], "topics:manage")
    assert await status([("topic", "room")], key=theirs) == 403
    # An internal topic and a presence topic on one operator stream.
    response = await session.get(
        url + base,
        params=[("topic", "internal"), ("topic", "room")],
        headers={"Authorization": f"Bearer {rt.api.key}"},
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
    )
    assert response.status == 200
    stream = SseStream(response)
    assert (await stream.next()).comments[:1] == ["ok"]
    ada = await rt.subscribe("room", token=await subject_token(rt, "ada"))
    assert await presence_events(stream, 1) == [("joined", "ada", None)]
    await rt.publish("internal", "quiet")
    event = await stream.next_event()
    while not event.data or event.event != "message":
        event = await stream.next_event()
    assert (event.json["topic"], event.json["message"]) == ("internal", "quiet")
    assert event.id is not None and event.id.startswith("v2m.")
    ada.close()
    assert await presence_events(stream, 1) == [("left", "ada", None)]
    stream.close()
