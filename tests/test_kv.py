"""KV over HTTP: CRUD, listing with prefix and cursor, capabilities, bad input."""

from __future__ import annotations

from tests.fix_server import Api


async def test_kv_crud_round_trip(api: Api) -> None:
    app = await api.create_app("kv-app")
    base = f"/api/v1/apps/{app['id']}/kv"
    assert (await api.get(f"{base}/user:1")).status == 404
    created = await api.put(f"{base}/user:1", json={"name": "Ada", "n": [1, 2]})
    assert created.status == 201, created.raw
    assert created.json["key"] == "user:1" and created.json["value"] == {"name": "Ada", "n": [1, 2]}
    replaced = await api.put(f"{base}/user:1", json="plain string")
    assert replaced.status == 200 and replaced.json["value"] == "plain string"
    got = await api.get(f"{base}/user:1")
    assert (got.status, got.json["value"]) == (200, "plain string")
    # Any JSON value, null included, and keys with slashes.
    assert (await api.put(f"{base}/a/b/c", data=b"null")).status == 201
    assert (await api.get(f"{base}/a/b/c")).json["value"] is None
    assert (await api.delete(f"{base}/user:1")).status == 204
    assert (await api.get(f"{base}/user:1")).status == 404
    assert (await api.delete(f"{base}/user:1")).status == 404


async def test_kv_list_with_prefix_and_cursor(api: Api) -> None:
    app = await api.create_app("kv-list")
    base = f"/api/v1/apps/{app['id']}/kv"
    for key in ("b:1", "a:2", "a:1", "a:3", "a_x", "c"):
        assert (await api.put(f"{base}/{key}", json=key)).status == 201
    page = await api.get(f"{base}?prefix=a:&limit=2")
    assert [e["key"] for e in page.json["entries"]] == ["a:1", "a:2"]
    assert page.json["next_cursor"] == "a:2"
    page = await api.get(f"{base}?prefix=a:&limit=2&cursor=a:2")
    assert [e["key"] for e in page.json["entries"]] == ["a:3"]
    assert page.json["next_cursor"] is None
    everything = await api.get(base)
    assert [e["key"] for e in everything.json["entries"]] == [
        "a:1",
        "a:2",
        "a:3",
        "a_x",
        "b:1",
        "c",
    ]
    # LIKE wildcards in a prefix are literal.
    assert [e["key"] for e in (await api.get(f"{base}?prefix=a_")).json["entries"]] == ["a_x"]
    assert (await api.get(f"{base}?limit=0")).status == 400
    assert (await api.get(f"{base}?limit=x")).status == 400


async def test_kv_bad_keys_and_bodies(api: Api) -> None:
    app = await api.create_app("kv-bad")
    base = f"/api/v1/apps/{app['id']}/kv"
    for key in ("has%20space", "star*", "x" * 257, "tab%09", "nul%00"):
        reply = await api.put(f"{base}/{key}", json=1)
        assert (reply.status, reply.error_code) == (400, "invalid_input"), key
        assert "invalid key" in reply.json["error"]["message"]
        assert (await api.get(f"{base}/{key}")).status == 400
        assert (await api.delete(f"{base}/{key}")).status == 400
    reply = await api.put(
        f"{base}/k", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (reply.status, reply.error_code) == (400, "malformed_json")
    # JSON that PostgreSQL cannot store (a NUL character in a string) is refused too.
    reply = await api.put(f"{base}/k", data=b'{"a": "x\\u0000y"}')
    assert (reply.status, reply.error_code) == (400, "invalid_input")
    assert "Unicode" in reply.json["error"]["message"]
    reply = await api.put(f"{base}/k", data=b"")
    assert (reply.status, reply.error_code) == (400, "malformed_json")
    big = b'"' + b"x" * (2 * 1024 * 1024) + b'"'
    reply = await api.put(f"{base}/k", data=big)
    assert (reply.status, reply.error_code) == (413, "too_large")
    assert (await api.get(f"{base}/k")).status == 404


async def test_kv_capabilities(api: Api) -> None:
    app = await api.create_app("kv-caps")
    other = await api.create_app("kv-other")
    base = f"/api/v1/apps/{app['id']}/kv"
    reader = await api.create_key(app["id"], "kv:read")
    writer = await api.create_key(app["id"], "kv:write")
    assert (await api.put(f"{base}/k", json=1, key=writer)).status == 201
    assert (await api.put(f"{base}/k", json=2, key=reader)).status == 403
    assert (await api.delete(f"{base}/k", key=reader)).status == 403
    assert (await api.get(f"{base}/k", key=reader)).json["value"] == 1
    assert (await api.get(f"{base}/k", key=writer)).status == 403
    assert (await api.get(base, key=None)).status == 401
    assert (await api.get(f"/api/v1/apps/{other['id']}/kv/k", key=reader)).status == 403
