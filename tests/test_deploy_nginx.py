"""The production shape, tested: Debian's nginx with docker/nginx.conf (TLS, HTTP/2) in
front of two `picloud serve` nodes on one database. 20 SSE subscriptions share one HTTP/2
connection (curl --http2 --parallel) and all get a publish sent through the proxy; a frame
is not held back by the proxy (< 100 ms); stopping a node moves its subscribers to the
other with Last-Event-ID and no gap. (httpx multiplexing 20 long-lived streams on one
connection stalled some of them here, so the resuming subscribers have a connection each.)"""

from __future__ import annotations

import asyncio
import re
import ssl
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.deploy_util import Nginx, start_nginx
from tests.fix_server import ADMIN_KEY, free_port
from tests.procs import picloud_env, start_picloud, stop, wait_healthy

SUBSCRIBERS = 20
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Node:
    port: int
    proc: object


@pytest.fixture
def nodes(database: str, tmp_path: Path) -> Iterator[list[Node]]:
    started = []
    try:
        for i in range(2):
            port = free_port()
            env = picloud_env(
                DATABASE_URL=database,
                PICLOUD_LISTEN=f"127.0.0.1:{port}",
                PICLOUD_ADMIN_KEY=ADMIN_KEY,
                PICLOUD_DATA_DIR=str(tmp_path / f"node{i}"),
                PICLOUD_ROLES="relay,gc",
            )
            log = tmp_path / f"node{i}.log"
            proc = start_picloud(["serve"], env, tmp_path, log)
            wait_healthy(f"http://127.0.0.1:{port}", proc, log)
            started.append(Node(port, proc))
        yield started
    finally:
        for node in started:
            stop(node.proc)  # type: ignore[arg-type]


@pytest.fixture
def proxy(nodes: list[Node], tmp_path: Path) -> Iterator[Nginx]:
    nginx = start_nginx([n.port for n in nodes], free_port(), tmp_path / "nginx")
    try:
        yield nginx
    finally:
        nginx.stop()


@pytest.fixture
async def client(proxy: Nginx) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP/2 client of the proxy for the API calls (the subscribers have their own)."""
    async with httpx.AsyncClient(
        base_url=proxy.url,
        http2=True,
        verify=ssl.create_default_context(cafile=proxy.cert),
        timeout=30,
    ) as c:
        yield c


@dataclass
class Subscriber:
    """Follows the topic, reconnecting with Last-Event-ID whenever its stream ends."""

    client: httpx.AsyncClient
    ids: list[int] = field(default_factory=list)
    cursor: str | None = None  # the last SSE id: the opaque resume position
    received_at: dict[int, float] = field(default_factory=dict)
    connections: int = 0
    protocols: set[str] = field(default_factory=set)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            headers = {"Last-Event-ID": self.cursor} if self.cursor else {}
            try:
                async with self.client.stream(
                    "GET", "/realtime/topics/live", headers=headers
                ) as resp:
                    if resp.status_code != 200:
                        await asyncio.sleep(0.1)
                        continue
                    self.connections += 1
                    self.protocols.add(resp.http_version)
                    async for line in resp.aiter_lines():
                        if line == ":ok":
                            self.opened.set()
                        elif line.startswith("id: "):
                            self.cursor = line[4:]
                            seq = int(self.cursor.rsplit(".", 1)[-1])  # v1.<epoch>.<seq>
                            self.ids.append(seq)
                            self.received_at[seq] = time.perf_counter()
            except (httpx.HTTPError, httpx.StreamError):
                await asyncio.sleep(0.05)


async def publish(client: httpx.AsyncClient, app_id: str, n: int) -> tuple[int, float]:
    sent = time.perf_counter()
    reply = await client.post(
        f"/api/v1/apps/{app_id}/topics/live/messages", json={"message": {"n": n}}, headers=AUTH
    )
    return reply.status_code, sent


async def wait_until(check: object, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not reached within {within} s")


def curl_subscribers(proxy: Nginx, outputs: list[Path]) -> subprocess.Popen[bytes]:
    """One curl, one HTTP/2 connection, a multiplexed SSE stream per output file."""
    args = ["curl", "--http2", "--parallel", "--parallel-max", str(len(outputs)), "-sN"]
    args += ["--cacert", str(proxy.cert), "--max-time", "30"]
    for out in outputs:
        args += [f"{proxy.url}/realtime/topics/live", "-o", str(out)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_two_nodes_behind_nginx_over_http2(
    client: httpx.AsyncClient, proxy: Nginx, nodes: list[Node], database: str, tmp_path: Path
) -> None:
    made = await client.post(
        "/api/v1/apps", json={"slug": "deploy", "name": "Deploy"}, headers=AUTH
    )
    assert made.status_code == 201, made.text
    assert made.http_version == "HTTP/2"
    app_id = made.json()["id"]
    # The proxy's host name is the app's domain, so /realtime/ on it is this app.
    domain = await client.post(
        f"/api/v1/apps/{app_id}/domains", json={"host": "localhost"}, headers=AUTH
    )
    assert domain.status_code == 201, domain.text
    topic = await client.post(
        f"/api/v1/apps/{app_id}/topics",
        json={"name": "live", "external_subscribable": True, "auth_mode": "public"},
        headers=AUTH,
    )
    assert topic.status_code == 201, topic.text

    # 20 streams multiplexed over one connection all get a publish sent through the proxy.
    outputs = [tmp_path / f"stream{i}.txt" for i in range(SUBSCRIBERS)]
    curl = curl_subscribers(proxy, outputs)
    try:
        await wait_until(lambda: all(o.exists() and ":ok" in o.read_text() for o in outputs))
        status, _ = await publish(client, app_id, 1)
        assert status == 201
        first = re.compile(r"^id: v1\.[0-9]+\.1$", re.M)
        await wait_until(lambda: all(first.search(o.read_text()) for o in outputs))
    finally:
        curl.terminate()
        curl.wait(10)
    assert all('"message": {"n": 1}' in o.read_text() for o in outputs)

    # Subscribers that resume by themselves: a frame is not held back by the proxy, and
    # stopping a node moves its subscribers to the other without a gap.
    ctx = ssl.create_default_context(cafile=proxy.cert)
    own = [
        httpx.AsyncClient(base_url=proxy.url, http2=True, verify=ctx, timeout=30)
        for _ in range(SUBSCRIBERS)
    ]
    subs = [Subscriber(c, ids=[1]) for c in own]
    stop_all = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop_all)) for s in subs]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in subs)), 20)
        latencies = []
        acknowledged = 1
        for n in range(2, 12):
            status, sent = await publish(client, app_id, n)
            assert status == 201
            acknowledged += 1
            await wait_until(lambda n=n: all(n in s.received_at for s in subs))
            latencies.append(min(s.received_at[n] for s in subs) - sent)
        assert all(s.protocols == {"HTTP/2"} for s in subs)
        assert statistics.median(latencies) < 0.100, latencies

        before = [s.connections for s in subs]
        stop(nodes[0].proc)  # type: ignore[arg-type]
        for n in range(12, 32):
            status, _ = await publish(client, app_id, n)
            if status == 201:
                acknowledged += 1
            await asyncio.sleep(0.02)
        with psycopg.connect(database) as conn:
            row = conn.execute("SELECT max(seq) FROM picloud.messages").fetchone()
        assert row is not None
        head: int = row[0]
        assert head >= acknowledged >= 25
        await wait_until(lambda: all(s.ids[-1] == head for s in subs), 30)
        moved = sum(s.connections > b for s, b in zip(subs, before, strict=True))
        assert moved > 0, "some subscribers were on the stopped node and reconnected"
        for s in subs:
            assert s.ids == list(range(1, head + 1)), "no gap, no duplicate, in order"
    finally:
        stop_all.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in own:
            await c.aclose()
        proxy.stop()

    lines = proxy.access_log.read_text().splitlines()
    multiplexed = [line for line in lines if "/realtime/topics/live" in line][:SUBSCRIBERS]
    assert len({re.search(r"conn=(\d+)", line)[1] for line in multiplexed}) == 1, (  # type: ignore[index]
        "curl's 20 streams went over one connection"
    )
    streams = [line for line in lines if "/realtime/topics/live" in line]
    assert len(streams) >= 2 * SUBSCRIBERS + moved
    assert all("HTTP/2.0" in line for line in streams)
    served_by = {re.search(r"upstream=(\S+)", line)[1] for line in streams}  # type: ignore[index]
    assert any(str(nodes[0].port) in u for u in served_by)
    assert any(str(nodes[1].port) in u for u in served_by), "both nodes served subscribers"
