"""Data and outbox routes: one SQL statement per request, refusals included.

docs, files, cron, handlers, triggers, deliveries and dead letters: each request runs one
statement that starts with picloud.authorize. A file upload is the exception the route
table allows: the gate (the key, the app and the path, before a byte of the body is
stored) and, once the blob is durable, the commit of its row — two statements around the
body I/O. A download adds only the blob's bytes, a delete only the unlinking of the blob.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from picloud.db import Row
from tests.fix_server import Api
from tests.redrive_util import seed_dead_letters
from tests.roundtrips import RoundTrips, round_trips
from tests.routes_covered import covers

__all__ = ["round_trips"]

APP = "/api/v1/apps/{app_id}"
COLLECTION = APP + "/collections/{collection}/docs"
DOC = COLLECTION + "/{id}"
FILE = APP + "/files/{path:.+}"
HANDLER = APP + "/handlers/{handler_id}"
TRIGGER = APP + "/triggers/{trigger_id}"
DEAD_LETTER = APP + "/dead-letters/{dead_letter_id}"

covers(
    ("GET", COLLECTION),
    ("POST", COLLECTION),
    ("GET", DOC),
    ("PUT", DOC),
    ("DELETE", DOC),
    ("GET", APP + "/files"),
    ("PUT", FILE),
    ("GET", FILE),
    ("DELETE", FILE),
    ("POST", APP + "/cron"),
    ("GET", APP + "/cron"),
    ("GET", APP + "/cron/{name}"),
    ("PATCH", APP + "/cron/{name}"),
    ("DELETE", APP + "/cron/{name}"),
    ("POST", APP + "/handlers"),
    ("GET", APP + "/handlers"),
    ("GET", HANDLER),
    ("PATCH", HANDLER),
    ("DELETE", HANDLER),
    ("GET", "/api/v1/trigger-sources"),
    ("POST", APP + "/triggers"),
    ("GET", APP + "/triggers"),
    ("GET", TRIGGER),
    ("PATCH", TRIGGER),
    ("DELETE", TRIGGER),
    ("GET", APP + "/deliveries"),
    ("GET", APP + "/deliveries/{delivery_id}"),
    ("GET", APP + "/dead-letters"),
    ("GET", DEAD_LETTER),
    ("POST", APP + "/dead-letters/retry"),
    ("POST", DEAD_LETTER + "/retry"),
    ("DELETE", DEAD_LETTER),
)


async def refused_by_the_key(
    rt: RoundTrips, api: Api, app: dict[str, Any], method: str, path: str, **body: Any
) -> None:
    """401 without a key or with a dead one, 403 with another app's key, 404 for an unknown
    app (or a path app id that is no uuid): each after one statement."""
    other = await api.create_app(f"other-{uuid.uuid4().hex[:8]}")
    foreign = await api.create_key(other["id"], "app:admin")
    await rt.one(method, path, 401, key=None, **body)
    await rt.one(method, path, 401, key="pck_not-a-key", **body)
    await rt.one(method, path, 403, key=foreign, **body)
    await rt.one(method, path.replace(app["id"], str(uuid.uuid4())), 404, **body)
    await rt.one(method, path.replace(app["id"], "not-a-uuid"), 404, **body)


async def test_docs_run_one_statement(api: Api, round_trips: RoundTrips) -> None:
    rt = round_trips
    app = await api.create_app("rt-docs")
    base = f"/api/v1/apps/{app['id']}/collections/todos/docs"
    made = await rt.one("POST", base, 201, json={"title": "milk"})
    doc = f"{base}/{made.json['id']}"
    await rt.one("PUT", f"{base}/a", 201, json={"n": 1})
    put = await rt.one("PUT", f"{base}/a", 200, json={"n": 2}, headers={"If-Match": '"1"'})
    assert (put.json["version"], put.headers["ETag"]) == (2, '"2"')
    got = await rt.one("GET", f"{base}/a", 200)
    assert got.json["data"] == {"n": 2}
    listed = await rt.one("GET", f"{base}?limit=1", 200)
    assert len(listed.json["docs"]) == 1
    assert listed.json["next_cursor"] == listed.json["docs"][0]["id"]
    await rt.one("DELETE", doc, 204)
    await rt.one("GET", doc, 404)

    reader = await api.create_key(app["id"], "docs:read")
    for method, path, body in [
        ("GET", base, {}),
        ("POST", base, {"json": {"x": 1}}),
        ("GET", f"{base}/a", {}),
        ("PUT", f"{base}/a", {"json": {"x": 1}}),
        ("DELETE", f"{base}/a", {}),
    ]:
        await refused_by_the_key(rt, api, app, method, path, **body)
        bad = path.replace("/todos/", "/bad collection!/")
        await rt.one(method, bad, 400, **body)
        await rt.one(method, bad, 401, key=None, **body)  # the key first, whatever is wrong
    for method, body in [("POST", {"json": {"x": 1}}), ("PUT", {"json": {"x": 1}})]:
        target = base if method == "POST" else f"{base}/a"
        await rt.one(method, target, 403, key=reader, **body)
        await rt.one(method, target, 400, json=[1])  # a document is an object
    await rt.one("DELETE", f"{base}/a", 403, key=reader)
    await rt.one("GET", f"{base}/bad id!", 400)
    await rt.one("DELETE", f"{base}/missing", 404)
    await rt.one("PUT", f"{base}/a", 409, json={"n": 3}, headers={"If-Match": '"1"'})
    await rt.one("DELETE", f"{base}/a", 409, headers={"If-Match": '"1"'})
    await rt.refused("GET", f"{base}?limit=0", 400)
    await rt.refused("PUT", f"{base}/a", 400, json={"n": 3}, headers={"If-Match": "x"})


async def test_files_run_one_statement_around_their_bytes(
    api: Api, round_trips: RoundTrips
) -> None:
    rt = round_trips
    app = await api.create_app("rt-files")
    base = f"/api/v1/apps/{app['id']}/files"
    # An upload: the gate, the body written to disk, the commit of the row.
    reply, statements = await rt.call("PUT", f"{base}/a.txt", data=b"hello")
    assert reply.status == 201, reply.raw
    assert len(statements) == 2, statements
    assert "picloud.authorize" in statements[0] and "file_upload_path" in statements[0]
    assert "picloud.file_put" in statements[1]
    reply, statements = await rt.call("PUT", f"{base}/a.txt", data=b"again")
    assert (reply.status, len(statements)) == (200, 2), (reply.raw, statements)
    got = await rt.one("GET", f"{base}/a.txt", 200)  # the bytes are read from disk
    assert got.raw == b"again"
    etag = got.headers["ETag"]
    await rt.one("GET", f"{base}/a.txt", 304, headers={"If-None-Match": etag})
    listed = await rt.one("GET", base, 200)
    assert [f["path"] for f in listed.json["files"]] == ["a.txt"]
    await rt.one("DELETE", f"{base}/a.txt", 204)  # then the blob is unlinked
    await rt.one("GET", f"{base}/a.txt", 404)
    await rt.one("DELETE", f"{base}/a.txt", 404)

    reader = await api.create_key(app["id"], "files:read")
    for method, path, body in [
        ("GET", base, {}),
        ("PUT", f"{base}/b.txt", {"data": b"x"}),
        ("GET", f"{base}/b.txt", {}),
        ("DELETE", f"{base}/b.txt", {}),
    ]:
        await refused_by_the_key(rt, api, app, method, path, **body)
    for method, body in [("PUT", {"data": b"x"}), ("GET", {}), ("DELETE", {})]:
        await rt.one(method, f"{base}/a%5Cb", 400, **body)  # a backslash
        await rt.one(method, f"{base}/a%5Cb", 401, key=None, **body)
    await rt.one("PUT", f"{base}/b.txt", 403, key=reader, data=b"x")
    await rt.one("DELETE", f"{base}/b.txt", 403, key=reader)
    # Transport-level refusals after the gate: a Content-Type that cannot be kept.
    await rt.one("PUT", f"{base}/b.txt", 400, data=b"x", headers={"Content-Type": "a" * 300})
    await rt.refused("GET", f"{base}?limit=x", 400)


async def test_cron_runs_one_statement(api: Api, round_trips: RoundTrips) -> None:
    rt = round_trips
    app = await api.create_app("rt-cron")
    base = f"/api/v1/apps/{app['id']}/cron"
    body = {"name": "nightly", "expression": "0 3 * * *", "timezone": "Europe/Paris"}
    made = await rt.one("POST", base, 201, json=body)
    assert made.json["next_run_at"] is not None
    await rt.one("GET", base, 200)
    await rt.one("GET", f"{base}/nightly", 200)
    patched = await rt.one("PATCH", f"{base}/nightly", 200, json={"enabled": False})
    assert patched.json["enabled"] is False
    both = {"expression": "*/5 * * * *", "timezone": "UTC"}
    patched = await rt.one("PATCH", f"{base}/nightly", 200, json=both)
    assert patched.json["next_run_at"] is not None
    await rt.one("DELETE", f"{base}/nightly", 204)

    kv_key = await api.create_key(app["id"], "kv:write")
    for method, path, payload in [
        ("POST", base, {"json": {**body, "name": "x"}}),
        ("GET", base, {}),
        ("GET", f"{base}/x", {}),
        ("PATCH", f"{base}/x", {"json": {"enabled": True}}),
        ("DELETE", f"{base}/x", {}),
    ]:
        await refused_by_the_key(rt, api, app, method, path, **payload)
        await rt.one(method, path, 403, key=kv_key, **payload)
    await rt.one("POST", base, 201, json=body)
    await rt.one("POST", base, 409, json=body)
    await rt.one("POST", base, 400, json={**body, "name": "bad name"})
    await rt.one("POST", base, 400, json={**body, "name": "p", "payload": [1]})
    await rt.one("POST", base, 401, key=None, json={**body, "name": "bad name"})
    await rt.one("GET", f"{base}/missing", 404)
    await rt.one("PATCH", f"{base}/missing", 404, json={"enabled": True})
    await rt.one("DELETE", f"{base}/missing", 404)
    # The expression's grammar is checked before the statement (picloud.cron.expressions).
    await rt.refused("POST", base, 400, json={**body, "name": "y", "expression": "nope"})


async def test_handlers_and_triggers_run_one_statement(api: Api, round_trips: RoundTrips) -> None:
    rt = round_trips
    app = await api.create_app("rt-hooks")
    hbase = f"/api/v1/apps/{app['id']}/handlers"
    tbase = f"/api/v1/apps/{app['id']}/triggers"
    manager = await api.create_key(app["id"], "triggers:manage")
    hook = {"name": "h", "kind": "webhook", "url": "https://x.test/"}
    handler = (await rt.one("POST", hbase, 201, json=hook, key=manager)).json
    assert len(handler["secret"]) >= 16
    hpath = f"{hbase}/{handler['id']}"
    await rt.one("GET", hbase, 200)
    got = await rt.one("GET", hpath, 200)
    assert "secret" not in got.json
    await rt.one("PATCH", hpath, 200, json={"timeout_ms": 500}, key=manager)
    sources = await rt.one("GET", "/api/v1/trigger-sources", 200, key=None)
    assert "kv" in sources.json["sources"] and "dead_letter" in sources.json["sources"]
    trigger = {"name": "t", "source": "kv", "handler_id": handler["id"]}
    made = (await rt.one("POST", tbase, 201, json=trigger, key=manager)).json
    tpath = f"{tbase}/{made['id']}"
    await rt.one("GET", tbase, 200)
    await rt.one("GET", tpath, 200)
    await rt.one("PATCH", tpath, 200, json={"enabled": False}, key=manager)
    await rt.one("DELETE", hpath, 409, key=manager)  # a trigger still uses it

    reader = await api.create_key(app["id"], "kv:read")
    for method, path, body in [
        ("POST", hbase, {"json": {**hook, "name": "h2"}}),
        ("GET", hbase, {}),
        ("GET", hpath, {}),
        ("PATCH", hpath, {"json": {"timeout_ms": 5}}),
        ("DELETE", hpath, {}),
        ("POST", tbase, {"json": {**trigger, "name": "t2"}}),
        ("GET", tbase, {}),
        ("GET", tpath, {}),
        ("PATCH", tpath, {"json": {"enabled": True}}),
        ("DELETE", tpath, {}),
    ]:
        await refused_by_the_key(rt, api, app, method, path, **body)
        await rt.one(method, path, 403, key=reader, **body)
    for bad in (
        {**hook, "name": "b", "kind": "ftp"},
        {"name": "b", "kind": "webhook"},
        {**hook, "name": "b", "timeout_ms": 0},
        {**hook, "name": "b", "timeout_ms": 300001},
        {**hook, "name": "b", "topic": "t"},
        {**hook, "name": "b c"},
    ):
        await rt.one("POST", hbase, 400, json=bad, key=manager)
    await rt.one("POST", hbase, 401, key=None, json={**hook, "kind": "ftp"})
    await rt.one("POST", hbase, 409, json=hook, key=manager)
    sql = {"name": "s", "kind": "sql", "function": "picloud_handlers.noop"}
    await rt.one("POST", hbase, 403, json=sql, key=manager)  # sql handlers: instance:admin
    await rt.one("POST", hbase, 400, json=sql)  # no such function
    await rt.one("POST", hbase, 403, json={"name": "p", "kind": "topic", "topic": "x"}, key=manager)
    await rt.one("PATCH", hpath, 400, json={"kind": "sql"}, key=manager)
    await rt.one("PATCH", hpath, 400, json={"url": "not a url"}, key=manager)
    missing = uuid.uuid4()
    for method, change in [("GET", None), ("PATCH", "timeout_ms"), ("DELETE", None)]:
        body = {"json": {change: 5}} if change else {}
        await rt.one(method, f"{hbase}/{missing}", 404, **body)
        await rt.one(method, f"{hbase}/not-a-uuid", 404, **body)
        await rt.one(method, f"{hbase}/not-a-uuid", 401, key=None, **body)
        body = {"json": {"max_attempts": 5}} if change else {}
        await rt.one(method, f"{tbase}/{missing}", 404, **body)
        await rt.one(method, f"{tbase}/not-a-uuid", 404, **body)
    for bad in (
        {**trigger, "name": "x", "source": "email"},
        {**trigger, "name": "x", "filter": {"bogus": 1}},
        {**trigger, "name": "x", "filter": "orders"},
        {**trigger, "name": "x", "max_attempts": 0},
        {**trigger, "name": "x", "max_attempts": 101},
        {**trigger, "name": "x", "handler_id": str(missing)},
    ):
        await rt.one("POST", tbase, 400, json=bad, key=manager)
    await rt.one("POST", tbase, 401, key=None, json={**trigger, "source": "email"})
    await rt.one("POST", tbase, 409, json=trigger, key=manager)
    await rt.one("PATCH", tpath, 400, json={"source": "docs"}, key=manager)
    await rt.refused("POST", tbase, 400, json={**trigger, "handler_id": "nope"}, key=manager)
    await rt.refused("POST", hbase, 400, json={**hook, "timeout_ms": "5"}, key=manager)
    await rt.one("DELETE", tpath, 204, key=manager)
    await rt.one("DELETE", hpath, 204, key=manager)


async def test_deliveries_and_dead_letters_run_one_statement(
    api: Api, round_trips: RoundTrips, db: psycopg.Connection[Row]
) -> None:
    rt = round_trips
    app = await api.create_app("rt-outbox")
    base = f"/api/v1/apps/{app['id']}"
    handler = (
        await api.post(
            f"{base}/handlers", json={"name": "h", "kind": "webhook", "url": "https://x.test/"}
        )
    ).json
    trigger = (
        await api.post(
            f"{base}/triggers", json={"name": "t", "source": "kv", "handler_id": handler["id"]}
        )
    ).json
    await api.put(f"{base}/kv/a", json=1)  # one delivery
    ids = seed_dead_letters(db, app["id"], trigger["id"], handler["id"], 3)

    await rt.one("GET", f"{base}/deliveries?status=done&source=kv", 200)
    listed = await rt.one("GET", f"{base}/deliveries?source=kv", 200)
    delivery = listed.json["deliveries"][0]
    shown = await rt.one("GET", f"{base}/deliveries/{delivery['id']}", 200)
    runs = [a["attempt"] for a in shown.json["attempts"]]
    assert runs == list(range(1, len(runs) + 1))
    await rt.one("GET", f"{base}/dead-letters?source=kv", 200)
    await rt.one("GET", f"{base}/dead-letters/{ids[0]}", 200)
    retried = await rt.one("POST", f"{base}/dead-letters/{ids[0]}/retry", 201)
    assert retried.json["delivery_id"] > 0
    conflict = await rt.one("POST", f"{base}/dead-letters/{ids[0]}/retry", 409)
    assert conflict.json["error"]["code"] == "already_retried"
    await rt.one("POST", f"{base}/dead-letters/{ids[0]}/retry?force=true", 201)
    counted = await rt.one("POST", f"{base}/dead-letters/retry", 200, json={"dry_run": True})
    assert counted.json["matching"] == 2
    bulk = await rt.one("POST", f"{base}/dead-letters/retry", 200, json={"limit": 1})
    assert bulk.json == {"retried": 1, "remaining": 1}
    await rt.one("DELETE", f"{base}/dead-letters/{ids[2]}", 204)

    reader = await api.create_key(app["id"], "deliveries:read")
    manager = await api.create_key(app["id"], "dead_letters:manage")
    for method, path, key, body in [
        ("GET", f"{base}/deliveries", manager, {}),
        ("GET", f"{base}/deliveries/{delivery['id']}", manager, {}),
        ("GET", f"{base}/dead-letters", reader, {}),
        ("GET", f"{base}/dead-letters/{ids[1]}", reader, {}),
        ("POST", f"{base}/dead-letters/retry", reader, {"json": {"dry_run": True}}),
        ("POST", f"{base}/dead-letters/{ids[1]}/retry", reader, {}),
        ("DELETE", f"{base}/dead-letters/{ids[1]}", reader, {}),
    ]:
        await refused_by_the_key(rt, api, app, method, path, **body)
        await rt.one(method, path, 403, key=key, **body)
    for path in (f"{base}/deliveries?status=bogus", f"{base}/deliveries?source=email"):
        await rt.one("GET", path, 400)
        await rt.one("GET", path, 401, key=None)
    await rt.one("GET", f"{base}/dead-letters?source=email", 400)
    await rt.one("POST", f"{base}/dead-letters/retry", 400, json={"source": "email"})
    since_after_until = {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    await rt.one("POST", f"{base}/dead-letters/retry", 400, json=since_after_until)
    for method in ("GET", "DELETE"):
        await rt.one(method, f"{base}/dead-letters/9223372036854775807", 404)
    await rt.one("POST", f"{base}/dead-letters/9223372036854775807/retry", 404)
    await rt.one("GET", f"{base}/deliveries/9223372036854775807", 404)
    # Another app's dead letter is none of this app's.
    other = await api.create_app("rt-outbox-other")
    await rt.one("GET", f"/api/v1/apps/{other['id']}/dead-letters/{ids[1]}", 404)
    await rt.one("POST", f"/api/v1/apps/{other['id']}/dead-letters/{ids[1]}/retry", 404)
    await rt.one("DELETE", f"/api/v1/apps/{other['id']}/dead-letters/{ids[1]}", 404)
    # Transport-level refusals need no statement.
    await rt.refused("GET", f"{base}/deliveries/x", 400)
    await rt.refused("POST", f"{base}/dead-letters/{ids[1]}/retry?force=maybe", 400)
    await rt.refused("POST", f"{base}/dead-letters/retry", 400, json={"since": "yesterday"})
