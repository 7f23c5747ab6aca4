"""The webhook egress guard: loopback, private and metadata addresses are refused at
connection time unless PICLOUD_WEBHOOK_ALLOWED_NETWORKS lists them (issue 11)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import aiohttp
import psycopg
import pytest
from aiohttp import web

from picloud.db import Row
from picloud.dispatcher.egress import blocked_reason
from picloud.settings import SettingsError, load_settings
from tests.fix_server import Api, ServerFactory, free_port

Conn = psycopg.Connection[Row]
SECRET = "egress-webhook-secret-0123456789"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.5", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "the cloud metadata address"),
        ("169.254.10.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fd12::1", "a unique-local address"),
        ("100.64.0.1", "a carrier-grade NAT address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:10.1.1.1", "a private address"),
        ("2002:a9fe:a9fe::1", "the cloud metadata address"),
    ],
)
def test_blocked_kinds(address: str, kind: str) -> None:
    assert blocked_reason(address, ()) == f"blocked: {address} is {kind}"


def test_public_and_allowed_addresses_pass() -> None:
    for address in ["8.8.8.8", "2606:4700:4700::1111", "::ffff:1.1.1.1"]:
        assert blocked_reason(address, ()) is None
    loopback = load_settings({"PICLOUD_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8, ::1/128"})
    allowed = loopback.webhook_allowed_networks
    assert allowed == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert blocked_reason("127.0.0.1", allowed) is None
    assert blocked_reason("::ffff:127.0.0.1", allowed) is None
    assert blocked_reason("10.0.0.1", allowed) is not None
    assert load_settings({}).webhook_allowed_networks == ()
    with pytest.raises(SettingsError, match="PICLOUD_WEBHOOK_ALLOWED_NETWORKS"):
        load_settings({"PICLOUD_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/33"})


class Hits:
    def __init__(self) -> None:
        self.count = 0
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.count += 1
        self.arrived.set()
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Hits, int]]:
    hits = Hits()
    app = web.Application()
    app.router.add_post("/hook", hits.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield hits, port
    await runner.cleanup()


async def hook_app(api: Api, slug: str, url: str) -> str:
    app = await api.create_app(slug)
    reply = await api.post(
        f"/api/v1/apps/{app['id']}/handlers",
        json={"name": "h", "kind": "webhook", "url": url, "secret": SECRET, "timeout_ms": 3000},
    )
    assert reply.status == 201, reply.raw
    body = {"name": "t", "source": "kv", "handler_id": reply.json["id"], "max_attempts": 1}
    assert (await api.post(f"/api/v1/apps/{app['id']}/triggers", json=body)).status == 201
    assert (await api.put(f"/api/v1/apps/{app['id']}/kv/k", json=1)).status == 201
    app_id: str = app["id"]
    return app_id


async def dead_error(db: Conn, app_id: str) -> str:
    async with asyncio.timeout(15):
        while True:
            row = db.execute(
                "SELECT last_error FROM picloud.dead_letters WHERE app_id = %s", (app_id,)
            ).fetchone()
            if row is not None:
                return str(row["last_error"])
            await asyncio.sleep(0.05)


async def test_default_settings_block_loopback_receivers(
    server_factory: ServerFactory,
    http_session: aiohttp.ClientSession,
    db: Conn,
    receiver: tuple[Hits, int],
) -> None:
    hits, port = receiver
    # The only server of this test: its dispatcher runs with the default (empty) allow-list.
    node = await server_factory(webhook_allowed_networks=load_settings({}).webhook_allowed_networks)
    api = Api(http_session, node.url)
    by_ip = await hook_app(api, "byip", f"http://127.0.0.1:{port}/hook")
    by_name = await hook_app(api, "byname", f"http://localhost:{port}/hook")
    assert await dead_error(db, by_ip) == "blocked: 127.0.0.1 is a loopback address"
    assert "is a loopback address" in await dead_error(db, by_name)
    assert hits.count == 0, "a blocked webhook reached the receiver"


async def test_allow_list_lets_loopback_through(
    server_factory: ServerFactory, http_session: aiohttp.ClientSession, receiver: tuple[Hits, int]
) -> None:
    hits, port = receiver
    allowed = (ipaddress.ip_network("127.0.0.0/8"),)
    api = Api(http_session, (await server_factory(webhook_allowed_networks=allowed)).url)
    await hook_app(api, "allowed", f"http://127.0.0.1:{port}/hook")
    async with asyncio.timeout(15):
        await hits.arrived.wait()
    assert hits.count == 1


async def test_urls_with_credentials_are_refused(api: Api) -> None:
    app = await api.create_app("creds")
    path = f"/api/v1/apps/{app['id']}/handlers"
    for url in ["http://user:pass@example.com/x", "https://token@example.com/", "http://@x.io/"]:
        body = {"name": "h", "kind": "webhook", "url": url}
        reply = await api.post(path, json=body)
        assert reply.status == 400, (url, reply.raw)
    ok = await api.post(path, json={"name": "h", "kind": "webhook", "url": "https://x.io/a@b"})
    assert ok.status == 201, ok.raw
    reply = await api.patch(f"{path}/{ok.json['id']}", json={"url": "http://u:p@x.io/"})
    assert reply.status == 400
