"""HTTP: subscriber tokens that may publish, POST /realtime/topics/{topic}/messages on the
app's host, its per-token rate limit, and "from" in the frames."""

from __future__ import annotations

from typing import Any

import pytest

from picloud.web.ratelimit import TokenBuckets, retry_after
from tests.fix_server import Api, Server, ServerFactory
from tests.test_realtime_sse import Realtime


async def mint(rt: Realtime, topic: str, key: str | None = None, **body: Any) -> Any:
    kw: dict[str, Any] = {} if key is None else {"key": key}
    return await rt.api.post(f"/api/v1/apps/{rt.app['id']}/topics/{topic}/tokens", json=body, **kw)


async def token_publish(
    rt: Realtime, topic: str, token: str | None, body: Any = None, host: str | None = None
) -> Any:
    headers = {"Host": host or rt.host}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await rt.api.call(
        "POST",
        f"/realtime/topics/{topic}/messages",
        json={"message": {"text": "hi"}} if body is None else body,
        key=None,
        headers=headers,
    )


@pytest.fixture
async def rt(api: Api, server: Server) -> Realtime:
    realtime = await Realtime.create(api, server, "chat")
    await realtime.topic("room", auth_mode="token")
    await realtime.topic("inside", external_subscribable=False)
    return realtime


async def test_minting_a_publish_token_needs_both_capabilities(rt: Realtime) -> None:
    app_id = rt.app["id"]
    minter = await rt.api.create_key(app_id, "tokens:mint")
    both = await rt.api.create_key(app_id, "tokens:mint", "topics:publish")
    admin = await rt.api.create_key(app_id, "app:admin")
    assert (await mint(rt, "room", minter)).status == 201
    refused = await mint(rt, "room", minter, publish=True)
    assert (refused.status, refused.error_code) == (403, "forbidden")
    assert "topics:publish" in refused.json["error"]["message"]
    assert (await mint(rt, "room", both, publish=True)).status == 201
    assert (await mint(rt, "room", admin, publish=True, subject="ada")).status == 201
    assert (await mint(rt, "room", admin, subject="x" * 128)).status == 201
    for bad in (
        {"publish": "yes"},
        {"subject": 5},
        {"subject": ""},
        {"subject": "x" * 129},
        {"subject": "a\nb"},
        {"extra": 1},
    ):
        reply = await mint(rt, "room", admin, **bad)
        assert reply.status == 400, (bad, reply.raw)


async def test_token_publish_allowed_refused_and_from(rt: Realtime) -> None:
    talker = (await mint(rt, "room", publish=True, subject="ada")).json["token"]
    anonymous = (await mint(rt, "room", publish=True)).json["token"]
    reader = (await mint(rt, "room")).json["token"]
    live = await rt.subscribe("room", token=reader)

    reply = await token_publish(rt, "room", talker)
    assert reply.status == 201, reply.raw
    assert set(reply.json) == {"id", "published_at"} and reply.json["id"] == 1
    assert (await token_publish(rt, "room", anonymous, {"message": [1]})).status == 201
    first, second = await live.next_event(), await live.next_event()
    assert first.json == {
        "topic": "room",
        "message": {"text": "hi"},
        "published_at": reply.json["published_at"],
        "from": "ada",
    }
    assert "from" not in second.json and second.json["message"] == [1]
    # Replayed frames carry "from" too.
    replay = await rt.subscribe("room", token=reader, headers={"Last-Event-ID": "0"})
    assert (await replay.next_event()).json["from"] == "ada"

    for token in (None, reader, "garbage", talker[:-3] + "AAA"):
        refused = await token_publish(rt, "room", token)
        assert (refused.status, refused.error_code) == (401, "unauthorized"), token
    inside = (await mint(rt, "inside", publish=True)).json["token"]
    assert (await token_publish(rt, "inside", inside)).status == 404
    assert (await token_publish(rt, "nope", talker)).status == 404
    assert (await token_publish(rt, "bad*name", talker)).status == 404
    other_host = f"nope.localhost:{rt.server.port}"
    assert (await token_publish(rt, "room", talker, host=other_host)).status == 404
    for body in ({}, {"message": 1, "more": 2}, [1], "x"):
        assert (await token_publish(rt, "room", talker, body)).status == 400, body
    bad_json = await rt.api.call(
        "POST",
        "/realtime/topics/room/messages",
        data=b"{nope",
        key=None,
        headers={"Host": rt.host, "Authorization": f"Bearer {talker}"},
    )
    assert bad_json.status == 400
    too_big = await token_publish(rt, "room", talker, {"message": "x" * 70000})
    assert too_big.status == 413
    history = await rt.api.get(f"/api/v1/apps/{rt.app['id']}/topics/room/messages")
    assert [m["id"] for m in history.json["messages"]] == [1, 2], "refusals wrote nothing"


async def test_token_publish_is_rate_limited(server_factory: ServerFactory, api: Api) -> None:
    server = await server_factory(token_publish_rate=4.0)
    rt = await Realtime.create(Api(api.session, server.url), server, "rl")
    await rt.topic("room", auth_mode="public")
    fast = (await mint(rt, "room", publish=True, subject="fast")).json["token"]
    calm = (await mint(rt, "room", publish=True, subject="calm")).json["token"]
    statuses = [(await token_publish(rt, "room", fast)).status for _ in range(8)]
    assert statuses == [201] * 8, "a burst of twice the rate"
    limited = await token_publish(rt, "room", fast)
    assert (limited.status, limited.error_code) == (429, "rate_limited")
    assert limited.headers["Retry-After"] == "1"
    assert (await token_publish(rt, "room", calm)).status == 201, "buckets are per token"
    history = await rt.api.get(f"/api/v1/apps/{rt.app['id']}/topics/room/messages")
    assert len(history.json["messages"]) == 9
    # Refused tokens get no bucket: junk costs no memory.
    for i in range(5):
        assert (await token_publish(rt, "room", f"junk{i}")).status == 401
    assert len(rt.server.state.token_publish_buckets or ()) == 2


def test_token_buckets_refill_and_stay_bounded() -> None:
    now = [0.0]
    buckets = TokenBuckets(2.0, 4.0, max_keys=10, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(4)] == [0.0] * 4
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] = 1.0  # two refilled (the refused take cost nothing)
    assert [buckets.take("a") for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("a") > 0
    now[0] = 100.0
    for i in range(30):
        buckets.take(f"k{i}")
    assert len(buckets) <= 10
    assert retry_after(0.01) == "1" and retry_after(2.2) == "3"
