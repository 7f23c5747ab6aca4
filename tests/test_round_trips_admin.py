"""Admin routes (apps, domains, keys, topics, tokens, signing keys, the operator stream)
and the meta and dashboard routes: one SQL statement per request, refusals included
(picloud.authorize joined to the picloud.* function that acts)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp

from tests.fix_server import ADMIN_KEY, Api
from tests.roundtrips import RoundTrips, round_trips
from tests.routes_covered import covers

__all__ = ["round_trips"]

APP = "/api/v1/apps/{app_id}"
TOPIC = APP + "/topics/{name}"
covers(
    ("POST", "/api/v1/apps"),
    ("GET", "/api/v1/apps"),
    ("GET", APP),
    ("PATCH", APP),
    ("DELETE", APP),
    ("POST", APP + "/domains"),
    ("GET", APP + "/domains"),
    ("DELETE", APP + "/domains/{host}"),
    ("POST", APP + "/keys"),
    ("GET", APP + "/keys"),
    ("DELETE", APP + "/keys/{key_id}"),
    ("POST", APP + "/topics"),
    ("GET", APP + "/topics"),
    ("GET", TOPIC),
    ("PATCH", TOPIC),
    ("DELETE", TOPIC),
    ("GET", TOPIC + "/messages"),
    ("POST", TOPIC + "/tokens"),
    ("POST", APP + "/tokens"),
    ("GET", APP + "/signing-keys"),
    ("POST", APP + "/signing-keys/rotate"),
    ("GET", TOPIC + "/stream"),
    ("GET", "/healthz"),
    ("GET", "/livez"),
    ("GET", "/version"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/dashboard"),
    ("GET", "/dashboard/"),
    ("GET", "/dashboard/{asset:[A-Za-z0-9_-]+\\.(?:js|css|svg)}"),
)

# Every route of an app that an app:admin key of another app, or no key, may not use:
# (method, path under the app, body).
APP_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("PATCH", "", {"name": "x"}),
    ("DELETE", "", None),
    ("POST", "/domains", {"host": "shop.example.com"}),
    ("GET", "/domains", None),
    ("DELETE", "/domains/shop.example.com", None),
    ("POST", "/keys", {"name": "k", "capabilities": ["kv:read"]}),
    ("GET", "/keys", None),
    ("DELETE", f"/keys/{uuid.uuid4()}", None),
    ("POST", "/topics", {"name": "t2"}),
    ("GET", "/topics", None),
    ("GET", "/topics/t", None),
    ("PATCH", "/topics/t", {"auth_mode": "public"}),
    ("DELETE", "/topics/t", None),
    ("GET", "/topics/t/messages", None),
    ("POST", "/topics/t/tokens", {}),
    ("POST", "/tokens", {"topics": ["t"]}),
    ("GET", "/signing-keys", None),
    ("POST", "/signing-keys/rotate", {}),
    ("GET", "/topics/t/stream", None),
]


def body(json: Any) -> dict[str, Any]:
    return {} if json is None else {"json": json}


async def test_app_routes_run_one_statement(api: Api, round_trips: RoundTrips) -> None:
    one = round_trips.one
    made = await one("POST", "/api/v1/apps", 201, json={"slug": "rt-admin", "name": "A"})
    app_id = made.json["id"]
    base = f"/api/v1/apps/{app_id}"
    listed = await one("GET", "/api/v1/apps", 200)
    assert app_id in [a["id"] for a in listed.json["apps"]]
    assert (await one("GET", base, 200)).json["slug"] == "rt-admin"
    renamed = await one("PATCH", base, 200, json={"name": "B", "slug": "rt-admin-b"})
    assert (renamed.json["name"], renamed.json["slug"]) == ("B", "rt-admin-b")
    assert (await one("PATCH", base, 200, json={})).json["name"] == "B"

    added = await one("POST", f"{base}/domains", 201, json={"host": "Shop.Example.com."})
    assert added.json["host"] == "shop.example.com"
    await one("POST", f"{base}/domains", 201, json={"host": "bücher.example"})
    hosts = [d["host"] for d in (await one("GET", f"{base}/domains", 200)).json["domains"]]
    assert hosts == ["shop.example.com", "xn--bcher-kva.example"]
    await one("DELETE", f"{base}/domains/SHOP.example.com", 204)
    await one("DELETE", f"{base}/domains/bücher.example", 204)
    assert (await one("GET", f"{base}/domains", 200)).json["domains"] == []

    key = await one("POST", f"{base}/keys", 201, json={"name": "r", "capabilities": ["kv:read"]})
    assert key.json["capabilities"] == ["kv:read"] and key.json["key"].startswith("pck_")
    keys = (await one("GET", f"{base}/keys", 200)).json["keys"]
    assert [k["id"] for k in keys] == [key.json["id"]] and "key" not in keys[0]
    revoked = await one("DELETE", f"{base}/keys/{key.json['id']}", 200)
    assert revoked.json["revoked_at"] is not None
    again = await one("DELETE", f"{base}/keys/{key.json['id']}", 200)
    assert again.json["revoked_at"] == revoked.json["revoked_at"]  # idempotent
    await one("GET", f"{base}/kv/a", 401, key=key.json["key"])  # the revoked key is dead

    await one("DELETE", base, 204)
    await one("GET", base, 404)


async def test_topic_routes_run_one_statement(api: Api, round_trips: RoundTrips) -> None:
    one = round_trips.one
    app = await api.create_app("rt-topics")
    base = f"/api/v1/apps/{app['id']}"
    made = await one("POST", f"{base}/topics", 201, json={"name": "room"})
    assert (made.json["auth_mode"], made.json["external_subscribable"]) == ("token", False)
    await one("POST", f"{base}/topics", 201, json={"name": "lobby", "auth_mode": "public"})
    watched = await one("POST", f"{base}/topics", 201, json={"name": "seen", "presence": True})
    assert (watched.json["presence"], made.json["presence"]) == (True, False)
    names = [t["name"] for t in (await one("GET", f"{base}/topics", 200)).json["topics"]]
    assert names == ["lobby", "room", "seen"]
    assert (await one("GET", f"{base}/topics/room", 200)).json["name"] == "room"
    flags = {"external_subscribable": True, "auth_mode": "public"}
    changed = await one("PATCH", f"{base}/topics/room", 200, json=flags)
    assert (changed.json["auth_mode"], changed.json["external_subscribable"]) == ("public", True)
    kept = await one("PATCH", f"{base}/topics/room", 200, json={})
    assert kept.json["auth_mode"] == "public"

    await api.post(f"{base}/topics/room/messages", json={"messages": [1, 2, 3]})
    history = await one("GET", f"{base}/topics/room/messages?after=1&limit=1", 200)
    assert [m["message"] for m in history.json["messages"]] == [2]
    empty = await one("GET", f"{base}/topics/lobby/messages", 200)
    assert empty.json["messages"] == [] and empty.json["reset"] is False

    token = await one("POST", f"{base}/topics/room/tokens", 201, data=b"")
    assert set(token.json) == {"token", "expires_at"}
    await one("POST", f"{base}/topics/room/tokens", 201, json={"ttl_seconds": 60, "publish": True})
    stream = await one("POST", f"{base}/tokens", 201, json={"topics": ["room", "lobby"]})
    assert stream.json["token"]

    status = await one("GET", f"{base}/signing-keys", 200)
    assert status.json["key_version"] == 1  # created by the first mint
    rotated = await one("POST", f"{base}/signing-keys/rotate", 200, json={"grace_seconds": 0})
    assert rotated.json["key_version"] == 2
    assert (await one("POST", f"{base}/signing-keys/rotate", 200, data=b"")).json[
        "key_version"
    ] == 3

    await one("DELETE", f"{base}/topics/room", 204)
    await one("GET", f"{base}/topics/room", 404)


async def test_signing_key_status_before_any_key(api: Api, round_trips: RoundTrips) -> None:
    app = await api.create_app("rt-nokey")
    status = await round_trips.one("GET", f"/api/v1/apps/{app['id']}/signing-keys", 200)
    assert set(status.json.values()) == {None}


async def test_every_app_route_refuses_in_one_statement(api: Api, round_trips: RoundTrips) -> None:
    app = await api.create_app("rt-refuse")
    other = await api.create_app("rt-refuse-other")
    await api.post(f"/api/v1/apps/{app['id']}/topics", json={"name": "t"})
    foreign = await api.create_key(other["id"], "app:admin")
    weak = await api.create_key(app["id"], "kv:read")
    base = f"/api/v1/apps/{app['id']}"
    for method, path, json in APP_ROUTES:
        kw = body(json)
        await round_trips.one(method, base + path, 401, key=None, **kw)
        await round_trips.one(method, base + path, 401, key="pck_not-a-key", **kw)
        await round_trips.one(method, base + path, 403, key=foreign, **kw)
        await round_trips.one(method, base + path, 403, key=weak, **kw)
        await round_trips.one(method, f"/api/v1/apps/{uuid.uuid4()}{path}", 404, **kw)
        await round_trips.one(method, f"/api/v1/apps/not-a-uuid{path}", 404, **kw)
    # The instance-level routes and the app deletion need instance:admin.
    admin = await api.create_key(app["id"], "app:admin")
    await round_trips.one("GET", "/api/v1/apps", 401, key=None)
    await round_trips.one("GET", "/api/v1/apps", 403, key=admin)
    await round_trips.one("POST", "/api/v1/apps", 401, key=None, json={"slug": "a", "name": "a"})
    await round_trips.one("POST", "/api/v1/apps", 403, key=admin, json={"slug": "a", "name": "a"})
    await round_trips.one("DELETE", base, 403, key=admin)
    assert (await api.get(base)).status == 200


async def test_bad_input_is_reported_by_sql_in_one_statement(
    api: Api, round_trips: RoundTrips
) -> None:
    one = round_trips.one
    app = await api.create_app("rt-bad")
    taken = await api.create_app("rt-taken")
    base = f"/api/v1/apps/{app['id']}"
    await api.post(f"{base}/topics", json={"name": "t"})
    app_key = await api.create_key(app["id"], "app:admin")
    minter = await api.create_key(app["id"], "tokens:mint")

    for slug in ("Bad Slug", "-x", "x" * 64, ""):
        await one("POST", "/api/v1/apps", 400, json={"slug": slug, "name": "n"})
        await one("PATCH", base, 400, json={"slug": slug})
    await one("POST", "/api/v1/apps", 400, json={"slug": "rt-ok", "name": ""})
    await one("PATCH", base, 400, json={"name": "x" * 201})
    await one("POST", "/api/v1/apps", 409, json={"slug": "rt-taken", "name": "n"})
    await one("PATCH", base, 409, json={"slug": taken["slug"]})

    for host in ("bad host", "a/b", "-x.example", "x" * 64 + ".example"):
        await one("POST", f"{base}/domains", 400, json={"host": host})
    await one("POST", f"{base}/domains", 201, json={"host": "taken.example"})
    await one("POST", f"{base}/domains", 409, json={"host": "TAKEN.example"})
    await one("POST", f"/api/v1/apps/{taken['id']}/domains", 409, json={"host": "taken.example"})
    await one("POST", f"{base}/domains", 409, json={"host": "rt-taken.localhost"})
    for reserved in ("localhost", "api.localhost", "10.0.0.1", "0x7f"):
        await one("POST", f"{base}/domains", 403, key=app_key, json={"host": reserved})
    await one("DELETE", f"{base}/domains/nowhere.example", 404)

    for caps in ([], ["kv:read", "nope"], ["instance:admin"]):
        await one("POST", f"{base}/keys", 400, json={"name": "k", "capabilities": caps})
    await one("POST", f"{base}/keys", 400, json={"name": "", "capabilities": ["kv:read"]})
    await one("DELETE", f"{base}/keys/{uuid.uuid4()}", 404)
    await one("DELETE", f"{base}/keys/not-a-uuid", 404)

    for name in ("bad*name", "x" * 129, "with space", "é"):
        await one("POST", f"{base}/topics", 400, json={"name": name})
        for method in ("GET", "PATCH", "DELETE"):
            patch: dict[str, Any] | None = {} if method == "PATCH" else None
            await one(method, f"{base}/topics/{name}", 400, **body(patch))
        await one("GET", f"{base}/topics/{name}/messages", 400)
        await one("POST", f"{base}/topics/{name}/tokens", 400, json={})
        await one("POST", f"{base}/tokens", 400, json={"topics": ["t", name]})
    await one("POST", f"{base}/topics", 400, json={"name": "m", "auth_mode": "secret"})
    await one("PATCH", f"{base}/topics/t", 400, json={"auth_mode": "secret"})
    for flag in ("yes", 1, [True]):  # the JSON shape: refused before any statement
        await round_trips.refused(
            "POST", f"{base}/topics", 400, json={"name": "m", "presence": flag}
        )
    await one("POST", f"{base}/topics", 409, json={"name": "t"})
    for method in ("GET", "PATCH", "DELETE"):
        await one(method, f"{base}/topics/ghost", 404, **body({} if method == "PATCH" else None))
    await one("GET", f"{base}/topics/ghost/messages", 404)
    await one("GET", f"{base}/topics/ghost/stream", 404)

    bad_mints: list[dict[str, Any]] = [
        {"ttl_seconds": 0},
        {"ttl_seconds": -5},
        {"ttl_seconds": 10**9},
        {"subject": ""},
        {"subject": "x" * 129},
        {"subject": "a\tb"},
    ]
    for bad in bad_mints:
        reply = await one("POST", f"{base}/topics/t/tokens", 400, json=bad)
        assert reply.error_code == "invalid_input", reply.raw
        await one("POST", f"{base}/tokens", 400, json={"topics": ["t"], **bad})
    subject = "x" * 128
    await one("POST", f"{base}/topics/t/tokens", 201, json={"subject": subject})
    await one("POST", f"{base}/tokens", 201, json={"topics": ["t"], "subject": subject})
    await one("POST", f"{base}/tokens", 400, json={"topics": []})
    await one("POST", f"{base}/tokens", 400, json={"topics": ["t", "t"]})
    await one("POST", f"{base}/topics/ghost/tokens", 404, json={})
    await one("POST", f"{base}/tokens", 404, json={"topics": ["t", "ghost"]})
    # A token that may publish needs topics:publish beside tokens:mint.
    refused = await one("POST", f"{base}/topics/t/tokens", 403, key=minter, json={"publish": True})
    assert "topics:publish" in refused.json["error"]["message"]
    await one("POST", f"{base}/topics/t/tokens", 201, key=minter, json={})

    for grace in (-1, 31 * 86400):
        await one("POST", f"{base}/signing-keys/rotate", 400, json={"grace_seconds": grace})


async def test_unauthorised_before_bad_input(api: Api, round_trips: RoundTrips) -> None:
    """A request without a key is 401 whatever SQL would find wrong with its input."""
    app = await api.create_app("rt-401")
    base = f"/api/v1/apps/{app['id']}"
    await api.post(f"{base}/topics", json={"name": "t"})
    cases: list[tuple[str, str, Any]] = [
        ("POST", "/api/v1/apps", {"slug": "Bad Slug", "name": ""}),
        ("POST", "/api/v1/apps", {"slug": "rt-401", "name": "dup"}),
        ("PATCH", base, {"slug": "Bad Slug"}),
        ("POST", f"{base}/domains", {"host": "bad host"}),
        ("POST", f"{base}/domains", {"host": "localhost"}),
        ("POST", f"{base}/keys", {"name": "k", "capabilities": ["nope"]}),
        ("POST", f"{base}/topics", {"name": "bad*name"}),
        ("POST", f"{base}/topics", {"name": "t"}),
        ("GET", f"{base}/topics/bad*name", None),
        ("PATCH", f"{base}/topics/bad*name", {"auth_mode": "secret"}),
        ("DELETE", f"{base}/topics/bad*name", None),
        ("GET", f"{base}/topics/bad*name/messages", None),
        ("POST", f"{base}/topics/bad*name/tokens", {"ttl_seconds": 0}),
        ("POST", f"{base}/tokens", {"topics": ["bad*name"], "ttl_seconds": 0}),
        ("POST", f"{base}/signing-keys/rotate", {"grace_seconds": -1}),
        ("DELETE", f"{base}/keys/not-a-uuid", None),
    ]
    for method, path, json in cases:
        await round_trips.one(method, path, 401, key=None, **body(json))
        await round_trips.one(method, path, 401, key="pck_not-a-key", **body(json))
    assert (await api.get(f"{base}/domains")).json["domains"] == []


async def test_transport_refusals_need_at_most_one_statement(
    api: Api, round_trips: RoundTrips
) -> None:
    refused = round_trips.refused
    app = await api.create_app("rt-transport")
    base = f"/api/v1/apps/{app['id']}"
    await api.post(f"{base}/topics", json={"name": "t"})
    await refused("POST", "/api/v1/apps", 400, data=b"{not json")
    await refused("POST", "/api/v1/apps", 400, json={"slug": "a", "name": "a", "extra": 1})
    await refused("POST", "/api/v1/apps", 400, json={"slug": 1, "name": "a"})
    await refused("PATCH", base, 400, json=[])
    await refused("POST", f"{base}/domains", 400, json={"host": "xn--\u00df\u0000.example"})
    await refused("POST", f"{base}/keys", 400, json={"name": "k", "capabilities": "kv:read"})
    await refused("POST", f"{base}/topics", 400, json={"name": "t", "auth_mode": 1})
    await refused("PATCH", f"{base}/topics/t", 400, json={"external_subscribable": "yes"})
    await refused("GET", f"{base}/topics/t/messages?after=nope", 400)
    await refused("GET", f"{base}/topics/t/messages?limit=0", 400)
    await refused("POST", f"{base}/topics/t/tokens", 400, json={"ttl_seconds": "60"})
    await refused("POST", f"{base}/tokens", 400, json={"topics": [1]})
    await refused("POST", f"{base}/signing-keys/rotate", 400, json={"grace_seconds": 1.5})


async def test_operator_stream_opens_after_one_authorised_statement(
    api: Api, round_trips: RoundTrips, http_session: aiohttp.ClientSession
) -> None:
    app = await api.create_app("rt-stream")
    base = f"/api/v1/apps/{app['id']}"
    await api.post(f"{base}/topics", json={"name": "t"})
    rid = "rt-stream-open"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Request-Id": rid}
    async with http_session.get(api.base_url + f"{base}/topics/t/stream", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        await asyncio.sleep(0.2)
    statements = round_trips.seen.by_request[rid]
    # The first statement authorises and finds the topic; the stream's own reads follow.
    assert statements and "picloud.authorize" in statements[0], statements


async def test_meta_and_dashboard_routes(api: Api, round_trips: RoundTrips) -> None:
    await round_trips.one("GET", "/healthz", 200)
    for path in ("/livez", "/version", "/metrics", "/openapi.json", "/dashboard/", "/dashboard"):
        reply, statements = await round_trips.call("GET", path)
        assert reply.status in (200, 308) and statements == [], (path, statements)
    reply, statements = await round_trips.call("GET", "/dashboard/app.js")
    assert reply.status == 200 and statements == []
    reply, statements = await round_trips.call("GET", "/dashboard/nope.js")
    assert reply.status == 404 and statements == []
