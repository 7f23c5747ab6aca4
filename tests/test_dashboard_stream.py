"""GET /api/v1/apps/{app_id}/topics/{name}/stream: the dashboard's live tail, an SSE
stream authorised by an API key on the relay's subscription machinery."""

from __future__ import annotations

from typing import Any

import aiohttp
import psycopg

from tests.fix_server import ADMIN_KEY, Api, Server
from tests.polling import until
from tests.sse_client import SseStream


async def operator_stream(
    api: Api, app_id: str, topic: str, key: str = ADMIN_KEY, **headers: str
) -> SseStream:
    response = await api.session.get(
        f"{api.base_url}/api/v1/apps/{app_id}/topics/{topic}/stream",
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
    )
    stream = SseStream(response)
    if response.status == 200:
        first = await stream.next()
        assert first.comments[:1] == ["ok"], first
    return stream


async def publish(api: Api, app_id: str, topic: str, message: Any) -> int:
    reply = await api.post(
        f"/api/v1/apps/{app_id}/topics/{topic}/messages", json={"message": message}
    )
    assert reply.status == 201, reply.raw
    seq: int = reply.json["id"]
    return seq


async def test_statuses(api: Api) -> None:
    app = await api.create_app("st")
    other = await api.create_app("other")
    assert (await api.post(f"/api/v1/apps/{app['id']}/topics", json={"name": "t"})).status == 201
    publisher = await api.create_key(app["id"], "topics:publish")
    foreign = await api.create_key(other["id"], "topics:manage")
    for key, status in [("nope", 401), (publisher, 403), (foreign, 403)]:
        stream = await operator_stream(api, app["id"], "t", key=key)
        assert stream.status == status
        stream.close()
    stream = await operator_stream(api, app["id"], "missing")
    assert stream.status == 404
    stream.close()


async def test_follows_an_internal_topic_and_resumes(api: Api, server: Server) -> None:
    app = await api.create_app("ops")
    body = {"name": "internal", "external_subscribable": False, "auth_mode": "token"}
    assert (await api.post(f"/api/v1/apps/{app['id']}/topics", json=body)).status == 201
    manager = await api.create_key(app["id"], "topics:manage")
    for i in (1, 2, 3):
        await publish(api, app["id"], "internal", {"n": i})

    stream = await operator_stream(
        api, app["id"], "internal", key=manager, **{"Last-Event-ID": "1"}
    )
    assert stream.status == 200
    assert stream.headers["Content-Type"] == "text/event-stream"
    assert await stream.messages(2) == [(2, {"n": 2}), (3, {"n": 3})]
    await publish(api, app["id"], "internal", {"n": 4})
    event = await stream.next_event()
    assert (event.seq, event.json["topic"], event.json["message"]) == (4, "internal", {"n": 4})
    assert event.json["published_at"]
    stream.close()


async def test_survives_the_relay_reconnecting_and_ends_on_delete(
    api: Api, server: Server, database: str
) -> None:
    """After losing LISTEN the relay re-checks its channels and ends those whose topics are
    not external: an operator's stream of an internal topic is kept and back-filled."""
    app = await api.create_app("keep")
    assert (
        await api.post(f"/api/v1/apps/{app['id']}/topics", json={"name": "inside"})
    ).status == 201
    stream = await operator_stream(api, app["id"], "inside")
    await publish(api, app["id"], "inside", 1)
    assert await stream.messages(1) == [(1, 1)]
    relay = server.state.roles.relay
    assert relay is not None
    with psycopg.connect(database, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'picloud relay %%'"
        ).fetchall()
        assert killed == [(True,)]
        conn.execute("SELECT picloud.publish(%s, 'inside', '2'::jsonb)", (app["id"],))
    await until(lambda: relay.connections == 2 and relay.listening.is_set())
    await publish(api, app["id"], "inside", 3)
    assert await stream.messages(2) == [(2, 2), (3, 3)]

    assert (await api.delete(f"/api/v1/apps/{app['id']}/topics/inside")).status == 204
    await stream.expect_end(within=5)
    assert relay.hub.channels == {}
