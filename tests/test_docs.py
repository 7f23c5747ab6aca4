"""Documents over HTTP: CRUD, versions and If-Match, listing, bad input."""

from __future__ import annotations

from tests.fix_server import Api


async def test_docs_crud_with_versions(api: Api) -> None:
    app = await api.create_app("docs-app")
    base = f"/api/v1/apps/{app['id']}/collections/orders/docs"
    created = await api.post(base, json={"total": 5})
    assert created.status == 201, created.raw
    doc = created.json
    assert (doc["collection"], doc["data"], doc["version"]) == ("orders", {"total": 5}, 1)
    assert created.headers["ETag"] == '"1"'
    url = f"{base}/{doc['id']}"
    got = await api.get(url)
    assert (got.status, got.json["data"], got.headers["ETag"]) == (200, {"total": 5}, '"1"')

    updated = await api.put(url, json={"total": 6}, headers={"If-Match": '"1"'})
    assert (updated.status, updated.json["version"]) == (200, 2)
    stale = await api.put(url, json={"total": 7}, headers={"If-Match": '"1"'})
    assert (stale.status, stale.error_code) == (409, "version_conflict")
    assert "version 2" in stale.json["error"]["message"]
    assert (await api.get(url)).json["data"] == {"total": 6}
    # Unconditional writes are last-writer-wins.
    assert (await api.put(url, json={"total": 8})).json["version"] == 3

    assert (await api.delete(url, headers={"If-Match": "2"})).status == 409
    assert (await api.delete(url, headers={"If-Match": "3"})).status == 204
    assert (await api.get(url)).status == 404
    assert (await api.delete(url)).status == 404


async def test_put_creates_with_a_chosen_id(api: Api) -> None:
    app = await api.create_app("docs-put")
    url = f"/api/v1/apps/{app['id']}/collections/users/docs/ada"
    conditional = await api.put(url, json={"n": 1}, headers={"If-Match": '"1"'})
    assert (conditional.status, conditional.error_code) == (409, "version_conflict")
    created = await api.put(url, json={"n": 1})
    assert (created.status, created.json["id"], created.json["version"]) == (201, "ada", 1)


async def test_docs_listing(api: Api) -> None:
    app = await api.create_app("docs-list")
    base = f"/api/v1/apps/{app['id']}/collections/c/docs"
    for doc_id in ("d3", "d1", "d2"):
        assert (await api.put(f"{base}/{doc_id}", json={"id": doc_id})).status == 201
    await api.put(f"/api/v1/apps/{app['id']}/collections/other/docs/x", json={})
    page = await api.get(f"{base}?limit=2")
    assert [d["id"] for d in page.json["docs"]] == ["d1", "d2"]
    assert page.json["next_cursor"] == "d2"
    page = await api.get(f"{base}?cursor=d2")
    assert [d["id"] for d in page.json["docs"]] == ["d3"] and page.json["next_cursor"] is None


async def test_docs_bad_input(api: Api) -> None:
    app = await api.create_app("docs-bad")
    base = f"/api/v1/apps/{app['id']}/collections"
    for body in (b"{oops", b"", b"[1, 2]", b'"text"', b"42"):
        reply = await api.post(f"{base}/c/docs", data=body)
        assert reply.status == 400, body
        assert reply.error_code in ("malformed_json", "invalid_input")
    reply = await api.post(f"{base}/c/docs", data=b'{"a": "\\u0000"}')
    assert (reply.status, reply.error_code) == (400, "invalid_input")
    reply = await api.post(f"{base}/c/docs", data=b"[1]")
    assert "JSON object" in reply.json["error"]["message"]
    reply = await api.put(f"{base}/bad%20name/docs/x", json={})
    assert reply.status == 400 and "invalid collection" in reply.json["error"]["message"]
    reply = await api.put(f"{base}/c/docs/bad*id", json={})
    assert reply.status == 400 and "invalid document id" in reply.json["error"]["message"]
    assert (await api.get(f"{base}/bad%20name/docs")).status == 400
    big = {"blob": "x" * (2 * 1024 * 1024)}
    reply = await api.post(f"{base}/c/docs", json=big)
    assert (reply.status, reply.error_code) == (413, "too_large")
    reply = await api.put(f"{base}/c/docs/x", json={}, headers={"If-Match": "abc"})
    assert (reply.status, reply.error_code) == (400, "invalid_if_match")


async def test_docs_capabilities(api: Api) -> None:
    app = await api.create_app("docs-caps")
    base = f"/api/v1/apps/{app['id']}/collections/c/docs"
    reader = await api.create_key(app["id"], "docs:read")
    writer = await api.create_key(app["id"], "docs:write")
    assert (await api.put(f"{base}/d", json={}, key=writer)).status == 201
    assert (await api.put(f"{base}/d", json={}, key=reader)).status == 403
    assert (await api.get(f"{base}/d", key=reader)).status == 200
    assert (await api.get(base, key=writer)).status == 403
