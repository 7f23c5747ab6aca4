"""Subscriber caps with real SSE connections: per app, per client, and the client behind a
trusted proxy (right-most untrusted X-Forwarded-For) (issue 11)."""

from __future__ import annotations

import ipaddress
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from picloud.settings import SettingsError, load_settings
from picloud.web.subscriber_caps import CAPS, client_of
from tests.fix_server import Api, ServerFactory
from tests.polling import until
from tests.sse_client import SseStream, open_stream
from tests.test_realtime_http import make_topic


async def setup(server_factory: ServerFactory, session: aiohttp.ClientSession, **caps: Any) -> Any:
    server = await server_factory(**caps)
    api = Api(session, server.url)
    app = await api.create_app("caps")
    await make_topic(api, app["id"], "t", external_subscribable=True, auth_mode="public")
    host = f"caps.localhost:{server.port}"

    async def subscribe(xff: str | None = None) -> SseStream:
        headers = {"X-Forwarded-For": xff} if xff else None
        return await open_stream(session, server.url, host, "t", headers=headers)

    return server, subscribe


async def test_per_client_cap_then_release(
    server_factory: ServerFactory, http_session: aiohttp.ClientSession
) -> None:
    server, subscribe = await setup(
        server_factory, http_session, realtime_max_subscribers_per_client=2
    )
    first, second = await subscribe(), await subscribe()
    assert (first.status, second.status) == (200, 200)
    over = await subscribe()
    assert over.status == 429
    assert over.headers["Retry-After"].isdigit()
    assert (await over.response.json())["error"]["code"] == "too_many_subscribers"
    over.close()
    # Without a trusted proxy, X-Forwarded-For changes nothing.
    assert (await subscribe("203.0.113.9")).status == 429
    first.close()
    caps = server.app[CAPS]
    await until(lambda: sum(caps.clients.values()) == 1)
    again = await subscribe()
    assert again.status == 200
    again.close()
    second.close()
    await until(lambda: not caps.clients and not caps.apps)
    # The streams the client closed count as what they were: 200, client closed.
    metrics = (await Api(http_session, server.url).get("/metrics")).raw.decode()
    route = 'route="/realtime/topics/{topic}"'
    lines = [line for line in metrics.splitlines() if route in line]
    assert any('status="200"' in line and line.endswith(" 3.0") for line in lines), lines
    assert any("client_closed_total" in line and line.endswith(" 3.0") for line in lines), lines
    assert not any('status="500"' in line for line in lines), lines


async def test_per_app_cap_across_clients_behind_a_trusted_proxy(
    server_factory: ServerFactory, http_session: aiohttp.ClientSession
) -> None:
    _, subscribe = await setup(
        server_factory,
        http_session,
        realtime_max_subscribers_per_app=3,
        realtime_max_subscribers_per_client=1,
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
    )
    a = await subscribe("198.51.100.1")
    assert a.status == 200
    # The same client again (a spoofed left-most entry does not make it another one).
    spoof = await subscribe("10.9.9.9, 198.51.100.1")
    assert spoof.status == 429
    b, c = await subscribe("198.51.100.2"), await subscribe("198.51.100.3, 127.0.0.5")
    assert (b.status, c.status) == (200, 200)
    full = await subscribe("198.51.100.4")
    assert full.status == 429
    assert "app" in (await full.response.json())["error"]["message"]
    for stream in (a, spoof, b, c, full):
        stream.close()


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("127.0.0.1", "1.1.1.1, 2.2.2.2", "2.2.2.2"),
        ("127.0.0.1", "1.1.1.1, 2.2.2.2, 127.0.0.9", "2.2.2.2"),
        ("127.0.0.1", "127.0.0.2, 127.0.0.3", "127.0.0.2"),
        ("127.0.0.1", "garbage", "garbage"),
        ("127.0.0.1", None, "127.0.0.1"),
        ("192.0.2.1", "1.1.1.1", "192.0.2.1"),
    ],
)
def test_client_of(peer: str, xff: str | None, expected: str) -> None:
    headers = {"X-Forwarded-For": xff} if xff else {}

    class Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return (peer, 1234) if name == "peername" else default

    request = make_mocked_request("GET", "/", headers=headers, transport=Transport())
    assert client_of(request, (ipaddress.ip_network("127.0.0.0/8"),)) == expected


def test_cap_settings() -> None:
    defaults = load_settings({})
    assert defaults.realtime_max_subscribers_per_app == 10000
    assert defaults.realtime_max_subscribers_per_client == 256
    assert defaults.trusted_proxies == ()
    with pytest.raises(SettingsError, match="PICLOUD_TRUSTED_PROXIES"):
        load_settings({"PICLOUD_TRUSTED_PROXIES": "nope"})
    with pytest.raises(SettingsError, match="PICLOUD_REALTIME_MAX_SUBSCRIBERS_PER_CLIENT"):
        load_settings({"PICLOUD_REALTIME_MAX_SUBSCRIBERS_PER_CLIENT": "0"})
