"""Database outages under a running server: fail fast (503 + Retry-After, /healthz within
1 s), tell readiness from liveness, and recover within 2 s of the database's return."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest
from aiohttp import web
from psycopg.conninfo import make_conninfo

from picloud.bootstrap import ensure_admin
from picloud.db import database_url
from picloud.migrate import migrate
from picloud.settings import Settings
from picloud.web.app import create_app
from tests.fix_server import ADMIN_KEY, free_port, make_test_settings
from tests.pg_cluster import Cluster

HEALTH_WITHIN_SEC = 1.0
RECOVER_WITHIN_SEC = 2.0


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    own = Cluster().init()
    own.start()
    try:
        yield own
    finally:
        own.destroy()


@pytest.fixture
def cluster_db(cluster: Cluster) -> str:
    url = cluster.create_database("picloud")
    migrate(url)
    return url


class Probe:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def get(self, path: str) -> tuple[int, float, aiohttp.typedefs.LooseHeaders]:
        """Status, seconds taken and headers of GET ``path`` (with the admin key)."""
        started = time.monotonic()
        async with self.session.get(
            self.url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as resp:
            await resp.read()
            return resp.status, time.monotonic() - started, resp.headers


@pytest.fixture
async def served(cluster_db: str, tmp_path: Path) -> AsyncIterator[Probe]:
    settings = make_test_settings(
        cluster_db, tmp_path, db_acquire_timeout_ms=500, roles=frozenset({"relay"})
    )
    ensure_admin(cluster_db, settings)
    runner = web.AppRunner(create_app(settings, cluster_db), handler_cancellation=True)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            yield Probe(session, f"http://127.0.0.1:{port}")
    finally:
        async with asyncio.timeout(60):  # a hang here fails the test instead of the suite
            await runner.cleanup()


async def test_healthz_reports_an_outage_within_a_second_and_recovery_within_two(
    cluster: Cluster, served: Probe
) -> None:
    assert (await served.get("/healthz"))[0] == 200
    for mode in ("fast", "immediate"):
        await asyncio.to_thread(cluster.stop, mode)
        stopped = time.monotonic()
        status, took, _ = await served.get("/healthz")
        assert (status, time.monotonic() - stopped <= HEALTH_WITHIN_SEC) == (503, True), took
        # While it is down: every answer a 503 within the second; /livez stays 200.
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            status, took, _ = await served.get("/healthz")
            assert status == 503 and took <= HEALTH_WITHIN_SEC, (status, took)
            live, took, _ = await served.get("/livez")
            assert live == 200 and took < HEALTH_WITHIN_SEC
            await asyncio.sleep(0.1)

        await asyncio.to_thread(cluster.start)
        back = time.monotonic()
        while True:
            status, _, _ = await served.get("/healthz")
            if status == 200:
                break
            assert time.monotonic() - back <= RECOVER_WITHIN_SEC, f"no recovery after {mode}"
            await asyncio.sleep(0.05)
        recovered = time.monotonic() - back
        assert recovered <= RECOVER_WITHIN_SEC, (mode, recovered)
        # The pool's other connections were replaced too: requests succeed, one after another.
        for _ in range(20):
            assert (await served.get("/api/v1/apps"))[0] == 200, mode


async def test_a_request_gets_503_within_the_acquire_timeout(
    cluster: Cluster, served: Probe
) -> None:
    assert (await served.get("/api/v1/apps"))[0] == 200
    await asyncio.to_thread(cluster.stop, "fast")
    acquire = 0.5  # PICLOUD_DB_ACQUIRE_TIMEOUT_MS of the server above
    for _ in range(5):  # broken pooled connections first, then none to be had
        status, took, headers = await served.get("/api/v1/apps")
        assert status == 503 and took <= acquire + 0.5, (status, took)
        assert headers["Retry-After"] == "1"
    await asyncio.to_thread(cluster.start)


async def test_every_connection_carries_an_application_name(cluster_db: str, served: Probe) -> None:
    # A request and the relay have connected by now.
    assert (await served.get("/healthz"))[0] == 200
    deadline = time.monotonic() + 10
    while True:
        with psycopg.connect(cluster_db, autocommit=True, connect_timeout=5) as conn:
            names = {
                r[0]
                for r in conn.execute(
                    "SELECT application_name FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            }
        roles = {n.split(" ")[1] for n in names if n.startswith("picloud ")}
        if {"serve", "relay"} <= roles or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert all(n.startswith("picloud ") and len(n.split(" ")) == 3 for n in names), names
    assert {"serve", "relay"} <= roles, names


def test_cli_connections_are_named_too(database: str) -> None:
    settings = Settings(database_url=database)
    with database_url(settings, role="migrate") as url, psycopg.connect(url) as conn:
        row = conn.execute("SHOW application_name").fetchone()
    assert row is not None and row[0].startswith("picloud migrate "), row
    assert len(row[0].split(" ")) == 3
    # A URL that names its connections itself keeps its name.
    own = make_conninfo(database, application_name="mine")
    with database_url(Settings(database_url=own)) as url, psycopg.connect(url) as conn:
        assert conn.execute("SHOW application_name").fetchone() == ("mine",)
