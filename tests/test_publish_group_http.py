"""HTTP: group commit of concurrent publishes (picloud.web.publish_group). Requests that
arrive while a group commits are written together, in one transaction, and each gets
its own answer; a bad or unauthorised request never fails the others of its group."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

import psycopg
import pytest

from picloud.db import Row
from picloud.web.publish_group import Publish, PublishGroups
from tests.fix_server import Api, Reply, Server
from tests.polling import until as wait_until
from tests.test_realtime_sse import Realtime
from tests.test_token_publish_http import mint

Conn = psycopg.Connection[Row]


def groups_of(server: Server) -> PublishGroups:
    groups = server.state.publish_groups
    assert groups is not None, "made by the first publish"
    return groups


def committed(server: Server) -> tuple[float, float]:
    """(groups, requests) the node has committed so far."""
    groups = groups_of(server)
    return groups.groups._value.get(), groups.requests._value.get()


@pytest.fixture
def xacts(db: Conn) -> Conn:
    """Counts, in the database itself, the transactions that wrote messages: a trigger
    records the top-level transaction id of every row of picloud.messages."""
    db.execute("CREATE TABLE public.message_xacts (xid xid8 NOT NULL)")
    db.execute(
        "CREATE FUNCTION public.note_xact() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN INSERT INTO public.message_xacts VALUES (pg_current_xact_id()); RETURN NULL;"
        " END $$"
    )
    db.execute(
        "CREATE TRIGGER note_xact AFTER INSERT ON picloud.messages"
        " FOR EACH ROW EXECUTE FUNCTION public.note_xact()"
    )
    return db


def transactions(db: Conn) -> int:
    row = db.execute("SELECT count(DISTINCT xid::text) AS n FROM public.message_xacts").fetchone()
    assert row is not None
    n: int = row["n"]
    return n


class Gate:
    """Holds the node's committing group inside the database (a lock on the message log
    that every publish needs), so that the requests sent meanwhile queue as one group."""

    def __init__(self, database: str) -> None:
        self.conn = psycopg.connect(database)
        self.conn.execute("LOCK TABLE picloud.messages IN SHARE MODE")

    def open(self) -> None:
        self.conn.commit()
        self.conn.close()


async def grouped(
    server: Server, database: str, rt: Realtime, requests: list[Awaitable[Reply]]
) -> tuple[Reply, list[Reply]]:
    """Send ``requests`` while a first publish (to topic "gate") holds the committing
    group, so that all of them go in the next group; the gate's reply and theirs."""
    gate = Gate(database)
    try:
        first = asyncio.ensure_future(rt.api.post(path(rt, "gate"), json={"message": 0}))
        await wait_until(lambda: server.state.publish_groups is not None)
        groups = groups_of(server)
        await wait_until(lambda: len(groups.committing) == 1)
        pending = [asyncio.ensure_future(r) for r in requests]
        await wait_until(lambda: groups.queued == len(pending))
    finally:
        gate.open()
    return await first, list(await asyncio.gather(*pending))


def path(rt: Realtime, topic: str) -> str:
    return f"/api/v1/apps/{rt.app['id']}/topics/{topic}/messages"


async def tokens_of_t(rt: Realtime) -> tuple[str, str]:
    """Two subscriber tokens of topic "t": one that may publish, one that may only listen."""
    publisher = (await mint(rt, "t", publish=True)).json["token"]
    listener = (await mint(rt, "t")).json["token"]
    return publisher, listener


async def stored(rt: Realtime, topic: str) -> list[Any]:
    reply = await rt.api.get(path(rt, topic))
    assert reply.status == 200, reply.raw
    return [m["message"] for m in reply.json["messages"]]


async def test_a_bad_message_is_refused_alone_and_the_group_commits(
    api: Api, server: Server, database: str, xacts: Conn
) -> None:
    rt = await Realtime.create(api, server)
    for t in ("gate", "t", "u"):
        await rt.topic(t)
    before = committed(server) if server.state.publish_groups else (0.0, 0.0)
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("t", {"message": {"n": 1}}),
        ("t", {"messages": [2, "bad\x00nul", 3]}),  # jsonb cannot hold it: 400
        ("u", {"message": "x"}),
        ("t", {"message": "y" * 70000}),  # over the size limit: 413
        ("t", {"messages": [4, 5]}),
        ("nope", {"message": 1}),  # no such topic: 404
        ("b*d", {"message": 1}),  # not a topic name: 400
        ("t", {"message": {"n": 6}}),
    ]
    first, replies = await grouped(
        server, database, rt, [api.post(path(rt, topic), json=body) for topic, body in bodies]
    )
    assert first.status == 201, first.raw
    assert [r.status for r in replies] == [201, 400, 201, 413, 201, 404, 400, 201]
    assert "message 1" in replies[1].json["error"]["message"], replies[1].json
    assert "70002 bytes" in replies[3].json["error"]["message"], replies[3].json
    assert [r.json.get("id") or r.json.get("ids") for r in replies if r.status == 201] == [
        1,
        1,
        [2, 3],
        4,
    ]
    assert await stored(rt, "t") == [{"n": 1}, 4, 5, {"n": 6}]
    assert await stored(rt, "u") == ["x"]
    # Two groups (the gate's, then all the others'), committed in two transactions.
    groups, requests = committed(server)
    assert (groups - before[0], requests - before[1]) == (2, 1 + len(bodies))
    assert transactions(xacts) == 2


async def test_authorisation_is_per_request_within_a_group(
    api: Api, server: Server, database: str
) -> None:
    rt = await Realtime.create(api, server)
    other = await api.create_app("other")
    for t in ("gate", "t"):
        await rt.topic(t)
    writer = await api.create_key(rt.app["id"], "topics:publish")
    reader = await api.create_key(rt.app["id"], "topics:manage")
    foreign = await api.create_key(other["id"], "app:admin")
    token, listen_only = await tokens_of_t(rt)
    host = {"Host": f"{rt.app['slug']}.localhost"}

    def key_publish(n: int, key: str | None) -> Awaitable[Reply]:
        return api.post(path(rt, "t"), json={"message": n}, key=key)

    def token_publish(n: int, tok: str) -> Awaitable[Reply]:
        return api.post(
            "/realtime/topics/t/messages",
            json={"message": n},
            key=tok,
            headers=host,
        )

    requests = [
        key_publish(1, writer),
        key_publish(2, "pck_wrong-key-" + uuid.uuid4().hex),  # 401
        key_publish(3, reader),  # 403: lacks topics:publish
        key_publish(4, foreign),  # 403: another app's key
        token_publish(5, token),
        token_publish(6, listen_only),  # 401: the token does not grant publish
        token_publish(7, "junk"),  # 401
        key_publish(8, writer),
    ]
    before = committed(server) if server.state.publish_groups else (0.0, 0.0)
    _, replies = await grouped(server, database, rt, requests)
    assert [r.status for r in replies] == [201, 401, 403, 403, 201, 401, 401, 201]
    assert [r.json["error"]["code"] for r in replies if r.status >= 400] == [
        "unauthorized",
        "forbidden",
        "forbidden",
        "unauthorized",
        "unauthorized",
    ]
    assert await stored(rt, "t") == [1, 5, 8]
    assert committed(server)[0] - before[0] == 2


async def test_concurrent_publishes_take_fewer_transactions_than_requests(
    api: Api, server: Server, xacts: Conn
) -> None:
    rt = await Realtime.create(api, server)
    await rt.topic("t")
    live = await rt.subscribe("t")
    n = 60
    replies = await asyncio.gather(
        *(api.post(path(rt, "t"), json={"message": i}) for i in range(n))
    )
    assert {r.status for r in replies} == {201}
    assert sorted(r.json["id"] for r in replies) == list(range(1, n + 1))
    groups, requests = committed(server)
    assert requests == n
    assert groups < n, (groups, requests)
    assert transactions(xacts) == groups
    # Every subscriber still sees every message once, in order.
    got = await live.messages(n)
    assert [seq for seq, _ in got] == list(range(1, n + 1))


async def test_a_lone_publish_goes_at_once(
    api: Api, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = await Realtime.create(api, server)
    await rt.topic("t")
    assert (await api.post(path(rt, "t"), json={"message": 0})).status == 201
    groups = groups_of(server)
    # The loop's clock stands still: a publish that waited for any timer (to collect
    # company) would never reach the database. It is in flight within a few turns.
    loop = asyncio.get_running_loop()
    now = loop.time()
    monkeypatch.setattr(loop, "time", lambda: now)
    app_id = uuid.UUID(rt.app["id"])
    pending = asyncio.ensure_future(
        groups.publish(Publish(topic="t", messages="1", key=api.key, app_id=app_id))
    )
    for _ in range(3):
        await asyncio.sleep(0)
    assert [p.messages for p in groups.committing] == ["1"]
    assert groups.queued == 0
    monkeypatch.undo()
    outcome = await pending
    assert outcome.error_state is None and outcome.ids == [2]
    before = committed(server)
    assert (await api.post(path(rt, "t"), json={"message": 2})).status == 201
    assert tuple(a - b for a, b in zip(committed(server), before, strict=True)) == (1, 1)


async def test_a_request_psycopg_cannot_send_is_answered_alone(
    api: Api, server: Server, database: str
) -> None:
    rt = await Realtime.create(api, server)
    for t in ("gate", "t"):
        await rt.topic(t)
    requests = [
        api.post(path(rt, "t"), json={"message": 1}),
        api.post(path(rt, "a%00b"), json={"message": 2}),  # a NUL in the topic
        api.post(path(rt, "t"), json={"message": 3}),
    ]
    _, replies = await grouped(server, database, rt, requests)
    assert [r.status for r in replies] == [201, 400, 201]
    assert await stored(rt, "t") == [1, 3]


@pytest.mark.parametrize(
    ("sqlstate", "status", "code"),
    [("XX000", 500, "internal"), ("40P01", 503, "unavailable")],  # a bug; a deadlock
)
async def test_a_group_that_fails_whole_is_published_one_by_one(
    api: Api, server: Server, database: str, db: Conn, sqlstate: str, status: int, code: str
) -> None:
    rt = await Realtime.create(api, server)
    for t in ("gate", "t"):
        await rt.topic(t)
    # A failure that is no refusal of the request's input fails the group's statement as
    # a whole; each request is then tried alone.
    db.execute(
        "CREATE FUNCTION public.explode() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.message = '\"boom\"' THEN"
        f" RAISE EXCEPTION 'boom' USING ERRCODE = '{sqlstate}';"
        " END IF; RETURN NULL; END $$"
    )
    db.execute(
        "CREATE TRIGGER explode AFTER INSERT ON picloud.messages"
        " FOR EACH ROW EXECUTE FUNCTION public.explode()"
    )
    requests = [
        api.post(path(rt, "t"), json={"message": 1}),
        api.post(path(rt, "t"), json={"message": "boom"}),
        api.post(path(rt, "t"), json={"message": 3}),
    ]
    _, replies = await grouped(server, database, rt, requests)
    assert [r.status for r in replies] == [201, status, 201]
    assert replies[1].json["error"]["code"] == code
    assert await stored(rt, "t") == [1, 3]


async def test_group_bounds(api: Api, server: Server, database: str) -> None:
    rt = await Realtime.create(api, server)
    for t in ("gate", "t"):
        await rt.topic(t)
    assert (await api.post(path(rt, "t"), json={"message": 0})).status == 201
    groups = groups_of(server)
    before = committed(server)
    # 300 messages in three requests: 100 + 100 fit one group of at most 256, the third
    # goes in the next one.
    requests = [api.post(path(rt, "t"), json={"messages": list(range(100))}) for _ in range(3)]
    _, replies = await grouped(server, database, rt, requests)
    assert {r.status for r in replies} == {201}
    assert committed(server)[0] - before[0] == 3  # the gate, 200 messages, 100 messages
    assert groups.queued == 0


async def test_a_lone_publish_answers_as_a_group_would(
    api: Api, server: Server, database: str, xacts: Conn
) -> None:
    """The same requests, once together in one group (picloud.publish_group) and once
    each alone (picloud.publish_one): the same answers, success and every refusal."""

    async def requests(rt: Realtime) -> list[Awaitable[Reply]]:
        app = rt.app["id"]
        for t in ("gate", "t", "u"):
            await rt.topic(t)
        await rt.topic("internal", external_subscribable=False)
        other = await api.create_app(rt.app["slug"] + "-other")
        reader = await api.create_key(app, "topics:manage")
        foreign = await api.create_key(other["id"], "app:admin")
        writer, listener = await tokens_of_t(rt)
        host = {"Host": f"{rt.app['slug']}.localhost"}

        def key(topic: str, body: dict[str, Any], k: Any = ...) -> Awaitable[Reply]:
            return api.post(path(rt, topic), json=body, key=k)

        def tok(topic: str, message: Any, t: str = writer, h: Any = host) -> Awaitable[Reply]:
            return api.post(
                f"/realtime/topics/{topic}/messages", json={"message": message}, key=t, headers=h
            )

        return [
            key("t", {"message": {"n": 1}}),
            key("t", {"messages": [2, 3]}),
            key("u", {"message": "x"}),
            key("t", {"message": "bad\x00nul"}),  # 400
            key("t", {"messages": [4, "bad\x00nul", 5]}),  # 400, "message 1: ..."
            key("t", {"message": "y" * 70000}),  # 413
            key("t", {"messages": []}),  # 400
            key("nope", {"message": 1}),  # 404
            key("b*d", {"message": 1}),  # 400
            key("t", {"message": 1}, "pck_wrong-key"),  # 401
            key("t", {"message": 1}, None),  # 401
            key("t", {"message": 1}, reader),  # 403
            key("t", {"message": 1}, foreign),  # 403
            tok("t", "a"),
            tok("t", "b", listener),  # 401
            tok("t", "c", "junk"),  # 401
            tok("t", "d", h={"Host": "nobody.localhost"}),  # 404
            tok("internal", "e"),  # 404
            tok("t", "f\x00"),  # 400
            tok("t", "z" * 70000),  # 413
        ]

    def answer(reply: Reply) -> tuple[int, Any]:
        body = dict(reply.json)
        assert reply.status != 201 or body.pop("published_at")
        return reply.status, body

    together = await Realtime.create(api, server, "grp")
    before = committed(server) if server.state.publish_groups else (0.0, 0.0)
    _, grouped_replies = await grouped(server, database, together, await requests(together))
    assert transactions(xacts) == 2, "the gate's group, then all the others in one"
    assert committed(server)[0] - before[0] == 2
    alone = await Realtime.create(api, server, "one")
    lone_replies = [await r for r in await requests(alone)]  # one at a time: groups of one
    assert [answer(r) for r in lone_replies] == [answer(r) for r in grouped_replies]
    assert [r.status for r in lone_replies] == [
        *(201, 201, 201, 400, 400, 413, 400, 404, 400, 401, 401, 403, 403),
        *(201, 401, 401, 404, 404, 400, 413),
    ]
    assert "message 1: " in lone_replies[4].json["error"]["message"]
    assert committed(server)[0] - before[0] == 2 + len(lone_replies)
    assert await stored(alone, "t") == await stored(together, "t")
