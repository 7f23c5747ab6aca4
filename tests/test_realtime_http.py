"""HTTP: topics, publish, history and subscriber tokens against a real server."""

from __future__ import annotations

from typing import Any

import aiohttp
import psycopg

from picloud.db import Row
from tests.fix_server import Api, ServerFactory


async def make_topic(api: Api, app_id: str, name: str, **flags: Any) -> dict[str, Any]:
    reply = await api.post(f"/api/v1/apps/{app_id}/topics", json={"name": name, **flags})
    assert reply.status == 201, reply.raw
    topic: dict[str, Any] = reply.json
    return topic


async def test_topic_crud_and_name_rules(api: Api) -> None:
    app = await api.create_app("shop")
    base = f"/api/v1/apps/{app['id']}/topics"
    created = await make_topic(api, app["id"], "orders.eu:v1-x_y")
    assert set(created) == {
        "app_id",
        "name",
        "external_subscribable",
        "auth_mode",
        "presence",
        "created_at",
        "updated_at",
    }
    assert (created["external_subscribable"], created["auth_mode"]) == (False, "token")
    public = await make_topic(
        api, app["id"], "lobby", external_subscribable=True, auth_mode="public"
    )
    assert (public["external_subscribable"], public["auth_mode"]) == (True, "public")

    reply = await api.post(base, json={"name": "lobby"})
    assert (reply.status, reply.error_code) == (409, "conflict")
    for bad in ["", "a*", "x" * 129, "sp ace", "ü", 5, None]:
        reply = await api.post(base, json={"name": bad})
        assert reply.status == 400, (bad, reply.raw)
    for body in (
        {"name": "m", "auth_mode": "secret"},
        {"name": "m", "external_subscribable": "yes"},
        {"name": "m", "colour": "red"},
    ):
        assert (await api.post(base, json=body)).status == 400, body

    listed = await api.get(base)
    assert [t["name"] for t in listed.json["topics"]] == ["lobby", "orders.eu:v1-x_y"]
    got = await api.get(f"{base}/lobby")
    assert got.status == 200 and got.json == public
    patched = await api.patch(f"{base}/lobby", json={"auth_mode": "token"})
    assert patched.status == 200
    assert (patched.json["auth_mode"], patched.json["external_subscribable"]) == ("token", True)
    assert (await api.patch(f"{base}/lobby", json={"auth_mode": "nope"})).status == 400
    assert (await api.patch(f"{base}/ghost", json={"auth_mode": "token"})).status == 404
    assert (await api.get(f"{base}/bad*name")).status == 400
    assert (await api.delete(f"{base}/lobby")).status == 204
    assert (await api.get(f"{base}/lobby")).status == 404
    assert (await api.delete(f"{base}/lobby")).status == 404


async def test_topic_capabilities(api: Api) -> None:
    app = await api.create_app("caps")
    other = await api.create_app("other")
    base = f"/api/v1/apps/{app['id']}/topics"
    await make_topic(api, app["id"], "t")
    manage = await api.create_key(app["id"], "topics:manage")
    publish = await api.create_key(app["id"], "topics:publish")
    mint = await api.create_key(app["id"], "tokens:mint")
    foreign = await api.create_key(other["id"], "app:admin")
    assert (await api.get(base, key=manage)).status == 200
    assert (await api.get(base, key=publish)).status == 403
    assert (await api.get(base, key=None)).status == 401
    assert (await api.get(base, key=foreign)).status == 403
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await api.get(f"/api/v1/apps/{missing}/topics", key=manage)).status == 404

    msg = {"message": {"hi": 1}}
    assert (await api.post(f"{base}/t/messages", json=msg, key=publish)).status == 201
    for key, status in ((manage, 403), (mint, 403), (foreign, 403), (None, 401), ("junk", 401)):
        assert (await api.post(f"{base}/t/messages", json=msg, key=key)).status == status, key
    reply = await api.post(f"/api/v1/apps/{missing}/topics/t/messages", json=msg, key=publish)
    assert reply.status == 404
    assert (await api.post(f"{base}/t/tokens", json={}, key=mint)).status == 201
    assert (await api.post(f"{base}/t/tokens", json={}, key=publish)).status == 403
    assert (await api.get(f"{base}/t/messages", key=publish)).status == 200


async def test_publish_and_history(api: Api) -> None:
    app = await api.create_app("pub")
    base = f"/api/v1/apps/{app['id']}/topics"
    await make_topic(api, app["id"], "t")
    values: list[Any] = [{"n": 1}, [1, 2], "text", 3.5, None, True, {"nested": {"é": "✓"}}]
    ids = []
    for value in values:
        reply = await api.post(f"{base}/t/messages", json={"message": value})
        assert reply.status == 201, reply.raw
        assert set(reply.json) == {"id", "published_at"}
        ids.append(reply.json["id"])
    assert ids == list(range(1, len(values) + 1))

    history = await api.get(f"{base}/t/messages")
    assert [m["message"] for m in history.json["messages"]] == values
    first = history.json["messages"][0]
    assert set(first) == {"id", "cursor", "topic", "message", "published_at"}
    assert first["topic"] == "t" and history.json["reset"] is False
    page = await api.get(f"{base}/t/messages?after=2&limit=3")
    assert [m["id"] for m in page.json["messages"]] == [3, 4, 5]
    at_head = await api.get(f"{base}/t/messages?after={len(values)}")
    assert (at_head.json["messages"], at_head.json["reset"]) == ([], False)
    assert (await api.get(f"{base}/t/messages?limit=0")).status == 400
    assert (await api.get(f"{base}/t/messages?after=x")).status == 400
    assert (await api.get(f"{base}/ghost/messages")).status == 404

    assert (await api.post(f"{base}/ghost/messages", json={"message": 1})).status == 404
    assert (await api.post(f"{base}/t/messages", json={"msg": 1})).status == 400
    assert (await api.post(f"{base}/t/messages", json={})).status == 400
    assert (await api.post(f"{base}/t/messages", data=b"{not json")).status == 400
    assert (await api.post(f"{base}/bad*/messages", json={"message": 1})).status == 400


async def test_message_size_limit_is_413(server_factory: ServerFactory) -> None:
    server = await server_factory(max_message_bytes=100)
    async with aiohttp.ClientSession() as session:
        api = Api(session, server.url)
        app = await api.create_app("big")
        await make_topic(api, app["id"], "t")
        url = f"/api/v1/apps/{app['id']}/topics/t/messages"
        assert (await api.post(url, json={"message": "x" * 90})).status == 201
        reply = await api.post(url, json={"message": "x" * 101})
        assert (reply.status, reply.error_code) == (413, "too_large")
        assert "limit of 100 bytes" in reply.json["error"]["message"]


async def test_mint_token_over_http(api: Api, database: str) -> None:
    app = await api.create_app("mint")
    base = f"/api/v1/apps/{app['id']}/topics"
    await make_topic(api, app["id"], "room", external_subscribable=True)
    reply = await api.post(f"{base}/room/tokens", json={"ttl_seconds": 120})
    assert reply.status == 201 and set(reply.json) == {"token", "expires_at"}
    token = reply.json["token"]
    default = await api.post(f"{base}/room/tokens", data=b"")
    assert default.status == 201
    for bad in ({"ttl_seconds": 0}, {"ttl_seconds": -5}, {"ttl_seconds": "60"}, {"x": 1}):
        assert (await api.post(f"{base}/room/tokens", json=bad)).status == 400, bad
    assert (await api.post(f"{base}/room/tokens", json={"ttl_seconds": 10**9})).status == 400
    assert (await api.post(f"{base}/ghost/tokens", json={})).status == 404
    with psycopg.connect(database, row_factory=psycopg.rows.dict_row) as conn:
        row: Row | None = conn.execute(
            "SELECT picloud.authorize_subscribe(%s, 'room', %s) AS v,"
            " (SELECT expires_at FROM picloud.subscriber_token_claims(%s)) AS exp",
            (app["id"], token, token),
        ).fetchone()
    assert row is not None and row["v"] == "allow"
    assert row["exp"].isoformat().startswith(reply.json["expires_at"][:19])
