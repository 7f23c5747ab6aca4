"""kv routes: one SQL statement per request, bad input included (picloud.authorize)."""

from __future__ import annotations

import uuid

from tests.fix_server import Api
from tests.roundtrips import RoundTrips, round_trips
from tests.routes_covered import covers

__all__ = ["round_trips"]

covers(
    ("GET", "/api/v1/apps/{app_id}/kv"),
    ("GET", "/api/v1/apps/{app_id}/kv/{key:.+}"),
    ("PUT", "/api/v1/apps/{app_id}/kv/{key:.+}"),
    ("DELETE", "/api/v1/apps/{app_id}/kv/{key:.+}"),
)


async def test_kv_routes_run_one_statement(api: Api, round_trips: RoundTrips) -> None:
    app = await api.create_app("rt-kv")
    base = f"/api/v1/apps/{app['id']}/kv"
    await round_trips.one("PUT", f"{base}/a", 201, json={"n": 1})
    await round_trips.one("PUT", f"{base}/a", 200, json={"n": 2})
    got = await round_trips.one("GET", f"{base}/a", 200)
    assert got.json["value"] == {"n": 2}
    listed = await round_trips.one("GET", f"{base}?prefix=a", 200)
    assert [e["key"] for e in listed.json["entries"]] == ["a"]
    await round_trips.one("DELETE", f"{base}/a", 204)
    await round_trips.one("GET", f"{base}/a", 404)
    await round_trips.one("DELETE", f"{base}/a", 404)


async def test_kv_refusals_run_one_statement(api: Api, round_trips: RoundTrips) -> None:
    app = await api.create_app("rt-kv-bad")
    other = await api.create_app("rt-kv-other")
    base = f"/api/v1/apps/{app['id']}/kv"
    reader = await api.create_key(app["id"], "kv:read")
    foreign = await api.create_key(other["id"], "app:admin")
    for method in ("GET", "PUT", "DELETE"):
        body = {"json": 1} if method == "PUT" else {}
        await round_trips.one(method, f"{base}/a", 401, key=None, **body)
        await round_trips.one(method, f"{base}/a", 401, key="pck_not-a-key", **body)
        await round_trips.one(method, f"{base}/a", 403, key=foreign, **body)
        await round_trips.one(method, f"{base}/bad key!", 400, **body)
        await round_trips.one(method, f"/api/v1/apps/{uuid.uuid4()}/kv/a", 404, **body)
        await round_trips.one(method, "/api/v1/apps/not-a-uuid/kv/a", 404, **body)
    await round_trips.one("PUT", f"{base}/a", 403, key=reader, json=1)
    await round_trips.one("DELETE", f"{base}/a", 403, key=reader)
    # Authorisation comes first: a malformed key without credentials is still 401.
    await round_trips.one("GET", f"{base}/bad key!", 401, key=None)
    await round_trips.one("GET", base, 401, key=None)
    await round_trips.refused("GET", f"{base}?limit=0", 400)


async def test_an_empty_list_still_checks_the_key(api: Api, round_trips: RoundTrips) -> None:
    # The key check is not a join the planner may skip when the app has no entries.
    app = await api.create_app("rt-kv-empty")
    other = await api.create_app("rt-kv-empty-other")
    foreign = await api.create_key(other["id"], "kv:read")
    base = f"/api/v1/apps/{app['id']}/kv"
    await round_trips.one("GET", base, 401, key=None)
    await round_trips.one("GET", base, 403, key=foreign)
    assert (await round_trips.one("GET", base, 200)).json["entries"] == []
