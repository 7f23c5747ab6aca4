"""HTTP: batch publish (POST …/topics/{name}/messages with {"messages": [...]}) and its
delivery to live and resuming SSE subscribers."""

from __future__ import annotations

from typing import Any

import psycopg

from picloud.db import Row
from tests.fix_server import Api, Server, ServerFactory
from tests.test_realtime_sse import Realtime


async def batch(rt: Realtime, topic: str, messages: Any, **kw: Any) -> Any:
    return await rt.api.post(
        f"/api/v1/apps/{rt.app['id']}/topics/{topic}/messages", json={"messages": messages}, **kw
    )


async def test_batch_is_delivered_in_order_live_and_on_replay(
    api: Api, server: Server, db: psycopg.Connection[Row]
) -> None:
    rt = await Realtime.create(api, server)
    await rt.topic("t")
    live = await rt.subscribe("t")
    handed: list[int] = []
    hub = rt.relay.hub
    deliver = hub.deliver

    def spy(key: Any, frames: Any) -> None:
        frames = list(frames)
        handed.append(len(frames))
        deliver(key, frames)

    hub.deliver = spy  # type: ignore[method-assign]
    assert await rt.publish("t", "first") == 1
    assert await live.messages(1) == [(1, "first")]
    reply = await batch(rt, "t", [{"n": i} for i in range(40)])
    assert reply.status == 201, reply.raw
    assert set(reply.json) == {"ids", "published_at"}
    assert reply.json["ids"] == list(range(2, 42))
    got = await live.messages(40)
    assert got == [(i + 2, {"n": i}) for i in range(40)]
    # One notification: the relay read the 40 rows at once and wrote them together.
    assert handed[-1] == 40, handed

    replay = await rt.subscribe("t", headers={"Last-Event-ID": "1"})
    assert await replay.messages(40) == got
    rows = db.execute("SELECT DISTINCT published_at FROM picloud.messages WHERE seq > 1").fetchall()
    assert len(rows) == 1, "one published_at for the batch"


async def test_bad_batches_publish_nothing(api: Api, server: Server) -> None:
    rt = await Realtime.create(api, server)
    await rt.topic("t")
    base = f"/api/v1/apps/{rt.app['id']}/topics/t/messages"
    for body, status, words in [
        ({"messages": "x"}, 400, "list"),
        ({"messages": {"a": 1}}, 400, "list"),
        ({"messages": []}, 400, "1 to 1000 messages"),
        ({"messages": [1], "message": 1}, 400, "either"),
        ({"messages": [1], "other": 1}, 400, "unknown field"),
        ({"messages": [1, 2, "bad\x00nul"]}, 400, "message 2"),
        ({"messages": [1, {"k\x00": 1}]}, 400, "message 1"),
        ({"messages": ["ok", "x" * 70000]}, 413, "message 1 is 70002 bytes"),
    ]:
        reply = await api.post(base, json=body)
        assert reply.status == status, (body, reply.raw)
        assert words in reply.json["error"]["message"], (body, reply.json)
    assert (await api.get(base)).json["messages"] == []
    assert (await api.post(base.replace("/t/", "/nope/"), json={"messages": [1]})).status == 404
    assert (await api.post(base.replace("/t/", "/b*d/"), json={"messages": [1]})).status == 400
    assert (await api.post(base, json={"messages": [1]}, key=None)).status == 401
    reader = await api.create_key(rt.app["id"], "topics:manage")
    assert (await api.post(base, json={"messages": [1]}, key=reader)).status == 403
    assert (await api.get(base)).json["messages"] == []


async def test_max_batch_messages_setting(server_factory: ServerFactory, api: Api) -> None:
    small = await server_factory(max_batch_messages=3)
    small_api = Api(api.session, small.url)
    rt = await Realtime.create(small_api, small, "small")
    await rt.topic("t")
    reply = await batch(rt, "t", [1, 2, 3, 4])
    assert reply.status == 400 and "1 to 3 messages, not 4" in reply.json["error"]["message"]
    assert (await batch(rt, "t", [1, 2, 3])).json["ids"] == [1, 2, 3]
