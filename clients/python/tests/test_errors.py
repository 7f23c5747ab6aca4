"""Each error class from a real server response, and the retry rules."""

from __future__ import annotations

import httpx
import pytest
from picloud.testing import PiCloudApp, PiCloudServer
from support import FakeClock

from picloud_client import (
    AsyncApp,
    AsyncPiCloud,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PiCloudError,
    RateLimited,
    Unauthorized,
    Unavailable,
    VersionConflict,
)
from picloud_client.errors import retry_after


async def test_bad_request(app: AsyncApp) -> None:
    with pytest.raises(BadRequest) as caught:
        await app.create_topic("no spaces allowed")
    assert caught.value.status == 400 and caught.value.code == "invalid_input"
    assert "topic name" in caught.value.message


async def test_unauthorized(picloud_app: PiCloudApp) -> None:
    async with AsyncPiCloud(picloud_app.server.url, api_key="pck_not_a_key") as pc:
        with pytest.raises(Unauthorized) as caught:
            await pc.app(picloud_app.id).list_topics()
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")


async def test_forbidden(app: AsyncApp, picloud_app: PiCloudApp) -> None:
    reader = (await app.create_key("reader", ["kv:read"]))["key"]
    async with AsyncPiCloud(picloud_app.server.url, api_key=reader) as pc:
        with pytest.raises(Forbidden) as caught:
            await pc.app(picloud_app.id).kv_set("k", 1)
    assert (caught.value.status, caught.value.code) == (403, "forbidden")


async def test_not_found(app: AsyncApp) -> None:
    with pytest.raises(NotFound) as caught:
        await app.get_topic("missing")
    assert (caught.value.status, caught.value.code) == (404, "not_found")


async def test_conflict_and_version_conflict(app: AsyncApp) -> None:
    await app.create_topic("t")
    with pytest.raises(Conflict) as caught:
        await app.create_topic("t")
    assert (caught.value.status, caught.value.code) == (409, "conflict")
    assert not isinstance(caught.value, VersionConflict)

    doc = await app.create_doc("c", {"v": 1})
    await app.put_doc("c", doc["id"], {"v": 2}, if_match=1)
    with pytest.raises(VersionConflict) as stale:
        await app.put_doc("c", doc["id"], {"v": 3}, if_match=1)
    assert (stale.value.status, stale.value.code) == (409, "version_conflict")
    assert isinstance(stale.value, Conflict)
    assert (await app.get_doc("c", doc["id"]))["data"] == {"v": 2}


async def test_payload_too_large(app: AsyncApp) -> None:
    await app.create_topic("big")
    with pytest.raises(PayloadTooLarge) as caught:
        await app.publish("big", "x" * 70_000)
    assert (caught.value.status, caught.value.code) == (413, "too_large")
    assert await app.history("big") == []


@pytest.fixture
def picloud_server_env() -> dict[str, str]:
    """This module's servers run no background roles (so no realtime relay)."""
    return {"PICLOUD_ROLES": "none"}


async def test_unavailable_from_a_node_without_relay(app: AsyncApp) -> None:
    await app.create_topic("t")
    with pytest.raises(Unavailable) as caught:
        await app.client.request("GET", f"/api/v1/apps/{app.id}/topics/t/stream")
    assert (caught.value.status, caught.value.code) == (503, "unavailable")
    assert caught.value.retry_after == 1.0  # every 503 says when to try again


async def test_connection_failed(picloud_server: PiCloudServer) -> None:
    picloud_server.kill()
    async with AsyncPiCloud(picloud_server.url, api_key=picloud_server.admin_key) as pc:
        with pytest.raises(ConnectionFailed) as caught:
            await pc.list_apps()
    assert isinstance(caught.value, Unavailable)


# The server on this branch sends no 429 and no Retry-After yet (rate caps and the
# fail-fast database come with other issues): these use httpx's mock transport.


def _mock(replies: list[httpx.Response], seen: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return replies.pop(0)

    return httpx.MockTransport(handle)


def _error(status: int, code: str, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code}!"}}
    return httpx.Response(status, json=body, headers=headers)


async def test_idempotent_requests_retry_503_with_retry_after() -> None:
    seen: list[str] = []
    clock = FakeClock()
    replies = [
        _error(503, "unavailable", **{"Retry-After": "2"}),
        _error(503, "unavailable", **{"Retry-After": "120"}),
        httpx.Response(200, json={"apps": []}),
    ]
    async with AsyncPiCloud("http://x", "k", clock=clock, transport=_mock(replies, seen)) as pc:
        assert await pc.list_apps() == []
    assert seen == ["GET", "GET", "GET"]
    assert clock.sleeps == [2.0, 30.0]  # the server's hint, capped


async def test_no_retry_without_retry_after_or_for_post() -> None:
    seen: list[str] = []
    clock = FakeClock()
    replies = [_error(503, "unavailable"), _error(503, "unavailable", **{"Retry-After": "1"})]
    async with AsyncPiCloud("http://x", "k", clock=clock, transport=_mock(replies, seen)) as pc:
        with pytest.raises(Unavailable):
            await pc.list_apps()
        with pytest.raises(Unavailable) as caught:
            await pc.app("a").publish("t", 1)
    assert seen == ["GET", "POST"]
    assert clock.sleeps == []
    assert caught.value.retry_after == 1.0


async def test_retries_give_up_after_the_limit() -> None:
    seen: list[str] = []
    clock = FakeClock()
    replies = [_error(503, "unavailable", **{"Retry-After": "1"}) for _ in range(4)]
    transport = _mock(replies, seen)
    async with AsyncPiCloud("http://x", "k", clock=clock, retries=3, transport=transport) as pc:
        with pytest.raises(Unavailable):
            await pc.list_apps()
    assert len(seen) == 4 and clock.sleeps == [1.0, 1.0, 1.0]


async def test_rate_limited_carries_retry_after() -> None:
    seen: list[str] = []
    replies = [_error(429, "rate_limited", **{"Retry-After": "7"})]
    async with AsyncPiCloud("http://x", "k", transport=_mock(replies, seen)) as pc:
        with pytest.raises(RateLimited) as caught:
            await pc.app("a").publish("t", 1)
    assert (caught.value.status, caught.value.retry_after) == (429, 7.0)


async def test_unknown_status_and_non_json_bodies() -> None:
    seen: list[str] = []
    replies = [httpx.Response(502, text="<html>bad gateway</html>")]
    async with AsyncPiCloud("http://x", "k", transport=_mock(replies, seen)) as pc:
        with pytest.raises(PiCloudError) as caught:
            await pc.list_apps()
    assert type(caught.value) is PiCloudError
    assert (caught.value.status, caught.value.code) == (502, "error")


def test_retry_after_forms() -> None:
    assert retry_after(httpx.Response(503, headers={"Retry-After": "5"})) == 5.0
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    odd = [(b"Retry-After", "²".encode("latin-1"))]
    assert retry_after(httpx.Response(503, headers=odd)) is None
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after(httpx.Response(503, headers={"Retry-After": past})) == 0.0
    assert retry_after(httpx.Response(503)) is None


class _Stop(Exception):
    pass


async def test_subscribe_backs_off_on_503(app: AsyncApp, picloud_app: PiCloudApp) -> None:
    await app.create_topic("t", external_subscribable=True, auth_mode="public")
    clock = FakeClock()

    async def stop_after(n: int) -> None:
        if n == 3:
            raise _Stop

    clock.on_sleep = stop_after
    async with AsyncPiCloud(picloud_app.server.url, clock=clock) as pc:
        sub = pc.subscribe(picloud_app.host, "t")
        with pytest.raises(_Stop):
            await anext(sub)
    assert clock.sleeps == [1, 2, 4]  # a 503 is a reason to wait, not to give up


async def test_subscribe_waits_at_least_what_retry_after_asks() -> None:
    seen: list[str] = []
    frame = b'id: 5\ndata: {"topic": "t", "message": 1, "published_at": "x"}\n\n'
    replies = [
        _error(503, "unavailable", **{"Retry-After": "7"}),
        _error(429, "rate_limited", **{"Retry-After": "3"}),
        _error(503, "unavailable", **{"Retry-After": "600"}),
        httpx.Response(200, content=frame, headers={"Content-Type": "text/event-stream"}),
    ]
    clock = FakeClock()
    transport = _mock(replies, seen)
    async with (
        AsyncPiCloud("http://x", clock=clock, transport=transport) as pc,
        pc.subscribe("app.example", "t") as sub,
    ):
        event = await anext(sub)
    assert clock.sleeps == [7.0, 3.0, 30.0]  # max(back-off, Retry-After), capped
    assert sub.last_event_id == "5"  # the id as the server sent it (opaque)
    assert getattr(event, "message", None) == 1
