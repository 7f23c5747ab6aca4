"""The control plane: apps, domains, keys, auth, errors, meta routes and OpenAPI."""

from __future__ import annotations

import aiohttp

from picloud import VERSIONS
from picloud.web.routing import openapi_path
from tests.fix_server import Api, Server


async def test_healthz_and_version(api: Api) -> None:
    reply = await api.get("/healthz", key=None)
    assert (reply.status, reply.json) == (200, {"status": "ok"})
    reply = await api.get("/version", key=None)
    assert (
        reply.json
        == VERSIONS
        == {"server": "1.1.6", "sdk": "1.7", "dashboard": "0.12.0", "client": "1.0.0"}
    )


async def test_admin_flow_and_capability_binding(api: Api) -> None:
    app = await api.create_app("shop", "Shop")
    assert set(app) >= {"id", "slug", "name", "created_at"} and app["slug"] == "shop"
    reply = await api.post(f"/api/v1/apps/{app['id']}/domains", json={"host": "Shop.Example.com"})
    assert reply.status == 201 and reply.json["host"] == "shop.example.com"
    reply = await api.post(
        f"/api/v1/apps/{app['id']}/keys", json={"name": "t", "capabilities": ["topics:manage"]}
    )
    assert reply.status == 201
    key_id, key = reply.json["id"], reply.json["key"]
    assert reply.json["capabilities"] == ["topics:manage"]

    listed = await api.get(f"/api/v1/apps/{app['id']}/keys")
    assert listed.status == 200 and key not in listed.raw.decode()
    assert [k["id"] for k in listed.json["keys"]] == [key_id]

    # The app key is refused on instance-level routes and on app-admin routes of its own app.
    assert (await api.get("/api/v1/apps", key=key)).status == 403
    assert (await api.post("/api/v1/apps", json={"slug": "x", "name": "x"}, key=key)).status == 403
    assert (await api.get(f"/api/v1/apps/{app['id']}/keys", key=key)).status == 403
    # ... and on another app entirely.
    other = await api.create_app("other")
    assert (await api.get(f"/api/v1/apps/{other['id']}", key=key)).status == 403

    revoked = await api.delete(f"/api/v1/apps/{app['id']}/keys/{key_id}")
    assert revoked.status == 200 and revoked.json["revoked_at"] is not None
    reply = await api.get(f"/api/v1/apps/{app['id']}/domains", key=key)
    assert (reply.status, reply.error_code) == (401, "unauthorized")


async def test_app_admin_key_manages_its_app_only(api: Api) -> None:
    app = await api.create_app("mine")
    key = await api.create_key(app["id"], "app:admin")
    assert (await api.get(f"/api/v1/apps/{app['id']}", key=key)).status == 200
    reply = await api.patch(f"/api/v1/apps/{app['id']}", json={"name": "Renamed"}, key=key)
    assert reply.status == 200 and reply.json["name"] == "Renamed"
    reply = await api.post(
        f"/api/v1/apps/{app['id']}/keys",
        json={"name": "n", "capabilities": ["instance:admin"]},
        key=key,
    )
    assert reply.status == 400
    assert (await api.delete(f"/api/v1/apps/{app['id']}", key=key)).status == 403


async def test_missing_and_bad_keys(api: Api) -> None:
    for key in (None, "nope", "pck_" + "0" * 64):
        reply = await api.get("/api/v1/apps", key=key)
        assert (reply.status, reply.error_code) == (401, "unauthorized")
    reply = await api.get("/api/v1/apps", headers={"Authorization": "Basic abc"}, key=None)
    assert reply.status == 401


async def test_unknown_app_is_404_after_auth(api: Api) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await api.get(f"/api/v1/apps/{missing}")).status == 404
    assert (await api.get("/api/v1/apps/not-a-uuid")).status == 404
    assert (await api.get(f"/api/v1/apps/{missing}", key=None)).status == 401


async def test_bad_input_gets_clear_json_errors(api: Api) -> None:
    cases = [
        (await api.post("/api/v1/apps", data=b'{"slug":'), 400, "malformed_json"),
        (await api.post("/api/v1/apps", data=b""), 400, "malformed_json"),
        (await api.post("/api/v1/apps", json=["x"]), 400, "invalid_input"),
        (await api.post("/api/v1/apps", json={"slug": "ok"}), 400, "invalid_input"),
        (await api.post("/api/v1/apps", json={"slug": 5, "name": "x"}), 400, "invalid_input"),
        (
            await api.post("/api/v1/apps", json={"slug": "Bad Slug", "name": "x"}),
            400,
            "invalid_input",
        ),
        (
            await api.post("/api/v1/apps", json={"slug": "a", "name": "x", "extra": 1}),
            400,
            "invalid_input",
        ),
        (await api.get("/no/such/route"), 404, "not_found"),
        (await api.put("/api/v1/apps"), 405, "method_not_allowed"),
    ]
    for reply, status, code in cases:
        assert reply.status == status, reply.raw
        assert reply.json["error"]["code"] == code
        assert reply.json["error"]["message"]
    await api.create_app("dup")
    reply = await api.post("/api/v1/apps", json={"slug": "dup", "name": "again"})
    assert (reply.status, reply.error_code) == (409, "conflict")


async def test_oversized_body_is_413(api: Api, server: Server) -> None:
    huge = b'{"slug": "' + b"a" * (server.app._client_max_size + 10) + b'"}'
    reply = await api.post("/api/v1/apps", data=huge)
    assert (reply.status, reply.error_code) == (413, "too_large")


async def test_domain_conflicts_and_bad_hosts(api: Api) -> None:
    a = await api.create_app("a1")
    b = await api.create_app("b1")
    assert (
        await api.post(f"/api/v1/apps/{a['id']}/domains", json={"host": "x.test"})
    ).status == 201
    reply = await api.post(f"/api/v1/apps/{b['id']}/domains", json={"host": "X.test"})
    assert reply.status == 409
    for bad in ["", "with space.test", "host:x80", "a/b"]:
        reply = await api.post(f"/api/v1/apps/{a['id']}/domains", json={"host": bad})
        assert reply.status == 400, bad
    assert (await api.delete(f"/api/v1/apps/{a['id']}/domains/x.test")).status == 204
    assert (await api.delete(f"/api/v1/apps/{a['id']}/domains/x.test")).status == 404


async def test_metrics_are_prometheus_text(api: Api) -> None:
    await api.get("/healthz")
    reply = await api.get("/metrics", key=None)
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
    assert 'picloud_http_requests_total{method="GET",route="/healthz",status="200"}' in (
        reply.raw.decode()
    )


async def test_openapi_matches_the_router(api: Api, server: Server) -> None:
    doc = (await api.get("/openapi.json", key=None)).json
    assert doc["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {
        (r.method, openapi_path(r.resource.canonical))
        for r in server.app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert documented == served


async def test_delete_app_cascades(api: Api, server: Server) -> None:
    app = await api.create_app("gone")
    key = await api.create_key(app["id"], "app:admin")
    assert (await api.delete(f"/api/v1/apps/{app['id']}")).status == 204
    assert (await api.get(f"/api/v1/apps/{app['id']}", key=key)).status == 401
    assert (await api.get(f"/api/v1/apps/{app['id']}")).status == 404


async def test_client_disconnect_does_not_break_server(api: Api, server: Server) -> None:
    async with aiohttp.ClientSession() as session, session.get(server.url + "/healthz") as resp:
        assert resp.status == 200
    assert (await api.get("/healthz")).status == 200
