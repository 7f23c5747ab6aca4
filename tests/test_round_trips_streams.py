"""The presence routes and the streams' refusals: one SQL statement per request.

A stream that opens runs its replay and live reads after the statement that authorised
it (the issue's exemption for streaming routes); a refused one is that one statement.
"""

from __future__ import annotations

import uuid

from tests.fix_server import Api
from tests.roundtrips import RoundTrips, round_trips
from tests.routes_covered import covers

__all__ = ["round_trips"]

covers(
    ("GET", "/api/v1/apps/{app_id}/topics/{name}/presence"),
    ("GET", "/realtime/presence/{topic}"),
    ("GET", "/api/v1/apps/{app_id}/stream"),
    ("GET", "/realtime"),
    ("GET", "/realtime/topics/{topic}"),
)


async def test_presence_listing_runs_one_statement(api: Api, round_trips: RoundTrips) -> None:
    app = await api.create_app("rt-presence")
    other = await api.create_app("rt-presence-other")
    base = f"/api/v1/apps/{app['id']}/topics"
    await api.post(base, json={"name": "room"})
    await api.post(base, json={"name": "quiet"})
    assert (await api.patch(f"{base}/room", json={"presence": True})).status == 200
    foreign = await api.create_key(other["id"], "topics:manage")
    listed = await round_trips.one("GET", f"{base}/room/presence", 200)
    assert listed.json == {"subjects": []}
    await round_trips.one("GET", f"{base}/quiet/presence", 409)
    await round_trips.one("GET", f"{base}/ghost/presence", 404)
    await round_trips.one("GET", f"{base}/bad name!/presence", 400)
    await round_trips.one("GET", f"{base}/bad name!/presence", 401, key=None)
    await round_trips.one("GET", f"{base}/room/presence", 403, key=foreign)
    await round_trips.one("GET", f"/api/v1/apps/{uuid.uuid4()}/topics/room/presence", 404)


async def test_app_host_routes_refuse_in_one_statement(api: Api, round_trips: RoundTrips) -> None:
    app = await api.create_app("rt-host")
    base = f"/api/v1/apps/{app['id']}/topics"
    created = await api.post(base, json={"name": "room", "external_subscribable": True})
    assert created.status == 201, created.raw
    await api.patch(f"{base}/room", json={"presence": True})
    host = {"Host": "rt-host.localhost"}
    await round_trips.one("GET", "/realtime/presence/room", 401, key=None, headers=host)
    await round_trips.one("GET", "/realtime/presence/ghost", 404, key=None, headers=host)
    await round_trips.one("GET", "/realtime/topics/room", 401, key=None, headers=host)
    await round_trips.one("GET", "/realtime/topics/ghost", 404, key=None, headers=host)
    await round_trips.one("GET", "/realtime?topic=room&topic=ghost", 404, key=None, headers=host)
    await round_trips.one("GET", "/realtime?topic=room", 401, key="not-a-token", headers=host)
    await round_trips.refused("GET", "/realtime", 400, key=None, headers=host)


async def test_operator_stream_refuses_in_one_statement(api: Api, round_trips: RoundTrips) -> None:
    app = await api.create_app("rt-opstream")
    reader = await api.create_key(app["id"], "kv:read")
    path = f"/api/v1/apps/{app['id']}/stream?topic=room"
    await round_trips.one("GET", path, 401, key=None)
    await round_trips.one("GET", path, 403, key=reader)
    await round_trips.one("GET", path, 404)  # no such topic
    await round_trips.one("GET", f"/api/v1/apps/{uuid.uuid4()}/stream?topic=room", 404)
    await round_trips.refused("GET", f"/api/v1/apps/{app['id']}/stream", 400)
