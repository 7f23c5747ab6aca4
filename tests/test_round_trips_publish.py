"""Publish routes: one SQL statement per request, refusals included (the group commit's
statement, picloud.publish_group, is counted for the request it was sent for; a lone
request is always the first of its group)."""

from __future__ import annotations

import uuid

from tests.fix_server import Api
from tests.roundtrips import RoundTrips, round_trips
from tests.routes_covered import covers

__all__ = ["round_trips"]

covers(
    ("POST", "/api/v1/apps/{app_id}/topics/{name}/messages"),
    ("POST", "/realtime/topics/{topic}/messages"),
)


async def test_publish_runs_one_statement(api: Api, round_trips: RoundTrips) -> None:
    app = await api.create_app("rt-pub")
    other = await api.create_app("rt-pub-other")
    await api.post(
        f"/api/v1/apps/{app['id']}/topics",
        json={"name": "t", "external_subscribable": True, "auth_mode": "token"},
    )
    base = f"/api/v1/apps/{app['id']}/topics/t/messages"
    reader = await api.create_key(app["id"], "topics:manage")
    foreign = await api.create_key(other["id"], "app:admin")
    one = round_trips.one
    assert (await one("POST", base, 201, json={"message": 1})).json["id"] == 1
    assert (await one("POST", base, 201, json={"messages": [2, 3]})).json["ids"] == [2, 3]
    await one("POST", base, 401, json={"message": 1}, key=None)
    await one("POST", base, 401, json={"message": 1}, key="pck_not-a-key")
    await one("POST", base, 403, json={"message": 1}, key=reader)
    await one("POST", base, 403, json={"message": 1}, key=foreign)
    await one("POST", f"/api/v1/apps/{uuid.uuid4()}/topics/t/messages", 404, json={"message": 1})
    await one("POST", "/api/v1/apps/not-a-uuid/topics/t/messages", 404, json={"message": 1})
    await one("POST", base.replace("/t/", "/nope/"), 404, json={"message": 1})
    await one("POST", base.replace("/t/", "/b*d/"), 400, json={"message": 1})
    await one("POST", base, 400, json={"messages": [1, "x\x00"]})
    await one("POST", base, 400, json={"messages": []})
    # A malformed body: the key check alone, and the body's fault only for an allowed key.
    await one("POST", base, 400, json={"nothing": 1})
    await one("POST", base, 400, data="{not json", headers={"Content-Type": "application/json"})
    await one("POST", base, 401, json={"nothing": 1}, key=None)
    await one("POST", base, 403, json={"nothing": 1}, key=reader)

    token = await api.post(f"/api/v1/apps/{app['id']}/topics/t/tokens", json={"publish": True})
    host = {"Host": "rt-pub.localhost"}
    path = "/realtime/topics/t/messages"
    tok = token.json["token"]
    assert (await one("POST", path, 201, json={"message": 4}, key=tok, headers=host)).json[
        "id"
    ] == 4
    await one("POST", path, 401, json={"message": 4}, key="junk", headers=host)
    await one("POST", path, 404, json={"message": 4}, key=tok, headers={"Host": "no.localhost"})
    await one(
        "POST", "/realtime/topics/nope/messages", 404, json={"message": 4}, key=tok, headers=host
    )
    await round_trips.refused("POST", path, 400, json={"nothing": 1}, key=tok, headers=host)


async def test_a_lone_publish_runs_publish_one(api: Api, round_trips: RoundTrips) -> None:
    # One request at a time: each is a group of one, sent as picloud.publish_one (scalar
    # parameters, no subtransaction), refusals included.
    app = await api.create_app("rt-one")
    await api.post(
        f"/api/v1/apps/{app['id']}/topics",
        json={"name": "t", "external_subscribable": True, "auth_mode": "token"},
    )
    base = f"/api/v1/apps/{app['id']}/topics/t/messages"
    reader = await api.create_key(app["id"], "topics:manage")
    token = await api.post(f"/api/v1/apps/{app['id']}/topics/t/tokens", json={"publish": True})
    host = {"Host": "rt-one.localhost"}
    tok = token.json["token"]
    cases: list[tuple[str, int, dict[str, object]]] = [
        (base, 201, {"json": {"message": 1}}),
        (base, 201, {"json": {"messages": [2, 3]}}),
        (base, 401, {"json": {"message": 1}, "key": None}),
        (base, 403, {"json": {"message": 1}, "key": reader}),
        (base.replace("/t/", "/nope/"), 404, {"json": {"message": 1}}),
        (base, 400, {"json": {"messages": [1, "x\x00"]}}),
        (base, 413, {"json": {"message": "x" * 70000}}),
        ("/realtime/topics/t/messages", 201, {"json": {"message": 4}, "key": tok, "headers": host}),
        ("/realtime/topics/t/messages", 401, {"json": {"message": 4}, "key": "j", "headers": host}),
    ]
    for path, status, kw in cases:
        reply, statements = await round_trips.call("POST", path, **kw)
        assert reply.status == status, (path, reply.status, reply.raw[:300])
        assert len(statements) == 1, statements
        assert "picloud.publish_one(" in statements[0], statements
