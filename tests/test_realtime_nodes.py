"""Two real ``picloud serve`` processes on one database: realtime works across nodes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.fix_server import ADMIN_KEY, Api, free_port
from tests.procs import picloud_env, start_picloud, stop, wait_healthy
from tests.sse_client import open_stream
from tests.test_realtime_http import make_topic


async def test_publish_through_either_node_reaches_subscribers_on_both(
    database: str, tmp_path: Path
) -> None:
    nodes = []
    for name in ("a", "b"):
        port = free_port()
        env = picloud_env(
            DATABASE_URL=database,
            PICLOUD_LISTEN=f"127.0.0.1:{port}",
            PICLOUD_ADMIN_KEY=ADMIN_KEY,
            PICLOUD_DATA_DIR=str(tmp_path / name),
            PICLOUD_MIGRATE="false",
        )
        log = tmp_path / f"{name}.log"
        nodes.append(
            (f"http://127.0.0.1:{port}", port, start_picloud(["serve"], env, tmp_path, log), log)
        )
    try:
        await asyncio.gather(
            *(asyncio.to_thread(wait_healthy, url, proc, log) for url, _, proc, log in nodes)
        )
        async with aiohttp.ClientSession() as session:
            apis = [Api(session, url) for url, *_ in nodes]
            app = await apis[0].create_app("multi")
            await make_topic(
                apis[0], app["id"], "t", external_subscribable=True, auth_mode="public"
            )
            await make_topic(
                apis[0], app["id"], "u", external_subscribable=True, auth_mode="public"
            )
            streams = [
                await open_stream(session, url, f"multi.localhost:{port}", "t")
                for url, port, *_ in nodes
            ]
            assert [s.status for s in streams] == [200, 200]
            for i, api in enumerate(apis + apis):
                reply = await api.post(
                    f"/api/v1/apps/{app['id']}/topics/t/messages", json={"message": f"via {i}"}
                )
                assert reply.status == 201
            expected = [(i + 1, f"via {i}") for i in range(4)]
            for stream in streams:
                assert await stream.messages(4) == expected
            # A topic deleted through node b ends the streams on both nodes.
            assert (await apis[1].delete(f"/api/v1/apps/{app['id']}/topics/t")).status == 204
            for stream in streams:
                await stream.expect_end(within=10)
            # Stopping a node ends its open streams promptly and exits cleanly.
            url, port, proc, _ = nodes[0]
            open_one = await open_stream(session, url, f"multi.localhost:{port}", "u")
            started = time.monotonic()
            assert await asyncio.to_thread(stop, proc) == 0
            await open_one.expect_end(within=10)
            assert time.monotonic() - started < 10
    finally:
        for *_, proc, _log in nodes:
            stop(proc)
