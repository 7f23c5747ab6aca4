"""Presence across two real ``picloud serve`` processes on one database: joins seen on the
other node, several tabs are one presence, one leave after the last, a SIGKILLed node's
subjects leave within PICLOUD_PRESENCE_TIMEOUT_SEC, and apps stay apart."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fix_server import ADMIN_KEY, Api, free_port
from tests.procs import picloud_env, start_picloud, stop, wait_healthy
from tests.sse_client import SseStream, open_stream
from tests.test_realtime_http import make_topic
from tests.test_realtime_presence import no_presence_event, presence_events

TIMEOUT_SEC = 2


@dataclass
class Node:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
async def nodes(database: str, tmp_path: Path) -> AsyncIterator[list[Node]]:
    started = []
    for name in ("a", "b"):
        port = free_port()
        env = picloud_env(
            DATABASE_URL=database,
            PICLOUD_LISTEN=f"127.0.0.1:{port}",
            PICLOUD_ADMIN_KEY=ADMIN_KEY,
            PICLOUD_DATA_DIR=str(tmp_path / name),
            PICLOUD_MIGRATE="false",
            PICLOUD_PRESENCE_TIMEOUT_SEC=str(TIMEOUT_SEC),
        )
        log = tmp_path / f"{name}.log"
        proc = start_picloud(["serve"], env, tmp_path, log)
        started.append(Node(f"http://127.0.0.1:{port}", port, proc, log))
    try:
        await asyncio.gather(
            *(asyncio.to_thread(wait_healthy, n.url, n.proc, n.log) for n in started)
        )
        yield started
    finally:
        for node in started:
            stop(node.proc)


class Cluster:
    def __init__(self, session: aiohttp.ClientSession, nodes: list[Node]) -> None:
        self.session = session
        self.nodes = nodes
        self.api = Api(session, nodes[0].url)

    async def presence_app(self, slug: str) -> dict[str, Any]:
        app = await self.api.create_app(slug)
        await make_topic(self.api, app["id"], "room", external_subscribable=True, auth_mode="token")
        reply = await self.api.patch(
            f"/api/v1/apps/{app['id']}/topics/room", json={"presence": True}
        )
        assert reply.status == 200, reply.raw
        await asyncio.sleep(0.5)  # both relays heard of the change (it ends live streams)
        return app

    async def token(self, app: dict[str, Any], subject: str, info: Any = None) -> str:
        body: dict[str, Any] = {"topics": ["room"], "subject": subject}
        if info is not None:
            body["info"] = info
        reply = await self.api.post(f"/api/v1/apps/{app['id']}/tokens", json=body)
        assert reply.status == 201, reply.raw
        token: str = reply.json["token"]
        return token

    async def join(self, node: int, app: dict[str, Any], token: str) -> SseStream:
        n = self.nodes[node]
        stream = await open_stream(
            self.session, n.url, f"{app['slug']}.localhost:{n.port}", "room", token=token
        )
        assert stream.status == 200
        return stream

    async def who(self, node: int, app: dict[str, Any]) -> list[tuple[str, int]]:
        api = Api(self.session, self.nodes[node].url)
        reply = await api.get(f"/api/v1/apps/{app['id']}/topics/room/presence")
        assert reply.status == 200, reply.raw
        return sorted((s["subject"], s["connections"]) for s in reply.json["subjects"])


@pytest.fixture
async def cluster(nodes: list[Node]) -> AsyncIterator[Cluster]:
    async with aiohttp.ClientSession() as session:
        yield Cluster(session, nodes)


async def test_joins_and_leaves_are_seen_across_nodes_once_per_subject(cluster: Cluster) -> None:
    app = await cluster.presence_app("chat")
    alice, bob = await cluster.token(app, "alice", {"n": "A"}), await cluster.token(app, "bob")
    alice_a = await cluster.join(0, app, alice)
    assert await presence_events(alice_a, 1) == [("joined", "alice", {"n": "A"})]
    bob_b = await cluster.join(1, app, bob)
    # Each sees the other's join, whichever came first.
    assert sorted(await presence_events(bob_b, 2)) == [
        ("joined", "alice", {"n": "A"}),
        ("joined", "bob", None),
    ]
    assert await presence_events(alice_a, 1) == [("joined", "bob", None)]
    # A second tab of alice, on the other node: no second join anywhere.
    alice_b = await cluster.join(1, app, alice)
    assert sorted(await presence_events(alice_b, 2)) == [
        ("joined", "alice", {"n": "A"}),
        ("joined", "bob", None),
    ]
    await no_presence_event(bob_b)
    await no_presence_event(alice_a, within=0.2)
    assert await cluster.who(1, app) == [("alice", 2), ("bob", 1)]
    # Closing one tab: still present. Closing the last: one leave, seen on both nodes.
    alice_a.close()
    await no_presence_event(bob_b)
    assert await cluster.who(0, app) == [("alice", 1), ("bob", 1)]
    alice_b.close()
    assert await presence_events(bob_b, 1) == [("left", "alice", {"n": "A"})]
    await no_presence_event(bob_b)
    assert await cluster.who(0, app) == [("bob", 1)]
    bob_b.close()


async def test_a_killed_node_s_subjects_leave_within_the_timeout(cluster: Cluster) -> None:
    app = await cluster.presence_app("kill")
    carol, dave = await cluster.token(app, "carol"), await cluster.token(app, "dave")
    carol_a = await cluster.join(0, app, carol)
    dave_a = await cluster.join(0, app, dave)
    dave_b = await cluster.join(1, app, dave)  # dave is on both nodes
    watcher = await cluster.join(1, app, await cluster.token(app, "watcher"))
    seen = await presence_events(watcher, 3)
    assert sorted(e[1] for e in seen) == ["carol", "dave", "watcher"]
    cluster.nodes[0].proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    assert cluster.nodes[0].proc.wait(10) == -signal.SIGKILL
    assert await presence_events(watcher, 1, within=TIMEOUT_SEC + 5) == [("left", "carol", None)]
    took = time.monotonic() - killed
    assert took <= TIMEOUT_SEC + 0.5, f"carol left {took:.2f}s after the kill"
    # dave still has a connection on the surviving node: no leave for him.
    await no_presence_event(watcher, within=TIMEOUT_SEC)
    assert await cluster.who(1, app) == [("dave", 1), ("watcher", 1)]
    for s in (carol_a, dave_a, dave_b, watcher):
        s.close()


async def test_presence_stays_within_its_app_across_nodes(cluster: Cluster) -> None:
    ours, theirs = await cluster.presence_app("ours"), await cluster.presence_app("theirs")
    watch_ours = await cluster.join(0, ours, await cluster.token(ours, "w"))
    watch_theirs = await cluster.join(0, theirs, await cluster.token(theirs, "w"))
    assert await presence_events(watch_ours, 1) == [("joined", "w", None)]
    assert await presence_events(watch_theirs, 1) == [("joined", "w", None)]
    eve = await cluster.join(1, theirs, await cluster.token(theirs, "eve", {"secret": 1}))
    assert await presence_events(watch_theirs, 1) == [("joined", "eve", {"secret": 1})]
    await no_presence_event(watch_ours)
    assert await cluster.who(1, ours) == [("w", 1)]
    # A token of one app opens nothing of the other, on either node.
    for node in (0, 1):
        n = cluster.nodes[node]
        stream = await open_stream(
            cluster.session,
            n.url,
            f"ours.localhost:{n.port}",
            "room",
            token=await cluster.token(theirs, "eve"),
        )
        assert stream.status == 401
    for s in (watch_ours, watch_theirs, eve):
        s.close()
