"""HTTP/SSE: a trigger whose handler is a topic streams a collection's changes live, from
the API and from psql alike."""

from __future__ import annotations

from typing import Any

import psycopg

from picloud.db import Row
from tests.fix_server import Api, Server
from tests.test_realtime_sse import Realtime


async def live_collection(rt: Realtime, topic: str = "todos", key: str | None = None) -> Any:
    kw: dict[str, Any] = {} if key is None else {"key": key}
    base = f"/api/v1/apps/{rt.app['id']}"
    handler = await rt.api.post(
        f"{base}/handlers", json={"name": f"live-{topic}", "kind": "topic", "topic": topic}, **kw
    )
    assert handler.status == 201, handler.raw
    trigger = await rt.api.post(
        f"{base}/triggers",
        json={
            "name": f"live-{topic}",
            "source": "docs",
            "filter": {"match": topic},
            "handler_id": handler.json["id"],
        },
        **kw,
    )
    assert trigger.status == 201, trigger.raw
    return handler.json


async def test_doc_changes_from_http_and_psql_arrive_live(
    api: Api, server: Server, db: psycopg.Connection[Row]
) -> None:
    rt = await Realtime.create(api, server, "todo")
    await rt.topic("todos")
    handler = await live_collection(rt)
    assert (handler["kind"], handler["topic"], handler["url"]) == ("topic", "todos", None)
    live = await rt.subscribe("todos")
    docs = f"/api/v1/apps/{rt.app['id']}/collections/todos/docs"

    put = await api.put(f"{docs}/milk", json={"title": "milk", "done": False})
    assert put.status in (200, 201), put.raw
    db.execute(
        'UPDATE picloud.docs SET data = \'{"title": "milk", "done": true}\''
        " WHERE app_id = %s AND collection = 'todos' AND id = 'milk'",
        (rt.app["id"],),
    )
    assert (await api.delete(f"{docs}/milk")).status == 204
    await api.put(f"/api/v1/apps/{rt.app['id']}/collections/other/docs/x", json={})
    got = [m for _, m in await live.messages(3)]
    assert [(m["source"], m["subject"], m["type"], m["id"]) for m in got] == [
        ("docs", "todos", "insert", "milk"),
        ("docs", "todos", "update", "milk"),
        ("docs", "todos", "delete", "milk"),
    ]
    assert got[0]["data"] == {"title": "milk", "done": False}
    assert got[1]["data"]["done"] is True and got[1]["version"] == 2
    deliveries = await api.get(f"/api/v1/apps/{rt.app['id']}/deliveries")
    assert deliveries.json["deliveries"] == [], "no delivery, no dispatcher hop"


async def test_topic_handlers_bad_input(api: Api, server: Server) -> None:
    rt = await Realtime.create(api, server, "bad")
    await rt.topic("todos")
    base = f"/api/v1/apps/{rt.app['id']}/handlers"
    manager = await api.create_key(rt.app["id"], "triggers:manage")
    both = await api.create_key(rt.app["id"], "triggers:manage", "topics:publish")
    body = {"name": "h", "kind": "topic", "topic": "todos"}
    refused = await api.post(base, json=body, key=manager)
    assert (refused.status, refused.error_code) == (403, "forbidden")
    for bad in (
        {**body, "topic": "missing"},
        {**body, "topic": "bad name"},
        {**body, "topic": 5},
        {"name": "h", "kind": "topic"},
        {**body, "url": "http://127.0.0.1:9/"},
        {**body, "function": "picloud_handlers.f"},
        {"name": "h", "kind": "webhook", "url": "http://127.0.0.1:9/", "topic": "todos"},
        {**body, "kind": "queue"},
    ):
        reply = await api.post(base, json=bad, key=both)
        assert reply.status == 400, (bad, reply.raw)
    created = await api.post(base, json=body, key=both)
    assert created.status == 201, created.raw
    path = f"{base}/{created.json['id']}"
    assert (await api.patch(path, json={"topic": "todos"}, key=manager)).status == 403
    assert (await api.patch(path, json={"topic": "missing"}, key=both)).status == 400
    assert (await api.patch(path, json={"kind": "webhook"}, key=both)).status == 400
    await rt.topic("done")
    moved = await api.patch(path, json={"topic": "done"}, key=both)
    assert (moved.status, moved.json["topic"]) == (200, "done")
    assert (await api.get(path, key=both)).json["topic"] == "done"

    # Pointing a trigger at a topic handler, or changing one that is, needs topics:publish.
    triggers = f"/api/v1/apps/{rt.app['id']}/triggers"
    trigger = {"name": "t", "source": "kv", "handler_id": created.json["id"]}
    refused = await api.post(triggers, json=trigger, key=manager)
    assert (refused.status, refused.error_code) == (403, "forbidden")
    made = await api.post(triggers, json=trigger, key=both)
    assert made.status == 201, made.raw
    widen = await api.patch(f"{triggers}/{made.json['id']}", json={"filter": {}}, key=manager)
    assert widen.status == 403
    hook = await api.post(
        base, json={"name": "w", "kind": "webhook", "url": "http://127.0.0.1:9/"}, key=manager
    )
    other = {"name": "w", "source": "kv", "handler_id": hook.json["id"]}
    assert (await api.post(triggers, json=other, key=manager)).status == 201, "webhooks as before"
