"""Server fixtures: a real PiCloud on a free loopback port, and an HTTP client for it.

``server`` runs in the test's own process (tests inspect its state); the ``picloud.testing``
plugin's ``picloud_server`` is the same server as a separate ``picloud serve`` process.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from picloud.bootstrap import ensure_admin
from picloud.settings import Settings
from picloud.testing.server import ADMIN_KEY, free_port
from picloud.web import request_id
from picloud.web.app import create_app
from picloud.web.state import STATE, AppState

__all__ = ["ADMIN_KEY", "LOOPBACK", "Api", "Reply", "Server", "ServerFactory", "free_port"]

# The suite's webhook receivers listen on loopback, which the egress guard blocks by default.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@dataclass
class Reply:
    status: int
    headers: Any
    raw: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.raw)

    @property
    def error_code(self) -> str:
        code: str = self.json["error"]["code"]
        return code


@dataclass
class Api:
    """A small JSON client: ``await api.post(path, json=..., key=...)`` -> Reply."""

    session: aiohttp.ClientSession
    base_url: str
    key: str | None = ADMIN_KEY

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | str | None = None,
        key: str | type[Ellipsis] | None = ...,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        use_key = self.key if key is ... else key
        if use_key is not None:
            hdrs["Authorization"] = f"Bearer {use_key}"
        body = data
        if json is not None:
            body = orjson.dumps(json)
            hdrs.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, self.base_url + path, data=body, headers=hdrs
        ) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.call("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Reply:
        return await self.call("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Reply:
        return await self.call("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.call("DELETE", path, **kw)

    async def create_app(self, slug: str, name: str | None = None) -> dict[str, Any]:
        reply = await self.post("/api/v1/apps", json={"slug": slug, "name": name or slug})
        assert reply.status == 201, reply.raw
        app: dict[str, Any] = reply.json
        return app

    async def create_key(self, app_id: str, *capabilities: str) -> str:
        reply = await self.post(
            f"/api/v1/apps/{app_id}/keys", json={"name": "test", "capabilities": list(capabilities)}
        )
        assert reply.status == 201, reply.raw
        key: str = reply.json["key"]
        return key


@dataclass
class Server:
    url: str
    port: int
    settings: Settings
    app: web.Application
    runner: web.AppRunner
    conninfo: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> AppState:
        return self.app[STATE]

    async def stop(self) -> None:
        await self.runner.cleanup()


ServerFactory = Callable[..., Awaitable[Server]]


class TracebackLog(logging.Handler):
    """Every log record with a traceback, with the id of the request it was logged for."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[tuple[str | None, logging.LogRecord]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback (most recent call last)" in record.getMessage():
            self.records.append((request_id.current(), record))


# The status every request to a test server answered, by request id.
STATUSES: dict[str, int] = {}


@web.middleware
async def record_status(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    rid = request.get(request_id.KEY)
    if rid is not None:
        STATUSES[rid] = response.status
    return response


def tracebacks_for_4xx(
    records: list[tuple[str | None, logging.LogRecord]], statuses: dict[str, int]
) -> list[str]:
    return [
        f"{statuses[rid]} (request {rid}): {record.getMessage()}"
        for rid, record in records
        if rid is not None and 400 <= statuses.get(rid, 0) < 500
    ]


@pytest.fixture(scope="session", autouse=True)
def no_traceback_for_a_4xx() -> Iterator[TracebackLog]:
    """After the whole suite: no request that answered 4xx logged a traceback."""
    handler = TracebackLog()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    found = tracebacks_for_4xx(handler.records, STATUSES)
    assert not found, "tracebacks logged for 4xx answers:\n" + "\n".join(found)


def make_test_settings(database: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test server: short intervals so the suite stays fast."""
    base = Settings(
        database_url=database,
        data_dir=data_dir,
        files_root=data_dir / "files",
        listen_port=0,
        admin_key=ADMIN_KEY,
        realtime_heartbeat_sec=30.0,
        cron_tick_interval_ms=200,
        dispatch_lease_sec=30,
        webhook_allowed_networks=LOOPBACK,
    )
    return base.with_(**overrides)


@pytest.fixture
async def server_factory(database: str, tmp_path: Path) -> AsyncIterator[ServerFactory]:
    started: list[Server] = []

    async def start(**overrides: Any) -> Server:
        settings = make_test_settings(database, tmp_path / f"node{len(started)}", **overrides)
        ensure_admin(database, settings)
        app = create_app(settings, database)
        app.middlewares.insert(0, record_status)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        server = Server(f"http://127.0.0.1:{port}", port, settings, app, runner, database)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        await server.stop()


@pytest.fixture
async def server(server_factory: ServerFactory) -> Server:
    return await server_factory()


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
async def api(server: Server, http_session: aiohttp.ClientSession) -> Api:
    return Api(http_session, server.url)
