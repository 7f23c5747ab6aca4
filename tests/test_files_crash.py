"""A ``picloud serve`` process killed in the middle of an upload: nothing half-written is
ever visible, and the orphan sweeper reclaims what the crash left on disk."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp

from tests.fix_server import ADMIN_KEY, Api, ServerFactory, free_port
from tests.procs import picloud_env, start_picloud, stop, wait_healthy


def tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.tmp.*") if p.is_file()] if root.exists() else []


async def test_killed_mid_upload_leaves_nothing_visible(
    database: str,
    tmp_path: Path,
    server_factory: ServerFactory,
    http_session: aiohttp.ClientSession,
) -> None:
    root = tmp_path / "files"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = picloud_env(
        DATABASE_URL=database,
        PICLOUD_LISTEN=f"127.0.0.1:{port}",
        PICLOUD_ADMIN_KEY=ADMIN_KEY,
        PICLOUD_DATA_DIR=str(tmp_path / "data"),
        PICLOUD_FILES_ROOT=str(root),
        PICLOUD_ROLES="none",
    )
    log = tmp_path / "serve.log"
    proc = start_picloud(["serve"], env, tmp_path, log)
    try:
        await asyncio.to_thread(wait_healthy, url, proc, log)
        app = await Api(http_session, url).create_app("crashy")
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            (
                f"PUT /api/v1/apps/{app['id']}/files/big.bin HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
                "Content-Length: 50000000\r\n\r\n"
            ).encode()
            + b"b" * 500_000
        )
        await writer.drain()
        async with asyncio.timeout(20):
            while not tmp_files(root):  # noqa: ASYNC110 (no event to await on a file system)
                await asyncio.sleep(0.02)
        assert stop(proc, signal.SIGKILL) == -signal.SIGKILL
        writer.transport.abort()
    finally:
        stop(proc, signal.SIGKILL)

    [leftover] = tmp_files(root)
    # A new node on the same database and files root: the upload never happened...
    server = await server_factory(
        files_root=root,
        roles=frozenset({"sweeper"}),
        files_orphan_tmp_ttl_sec=0.2,
        files_orphan_sweep_interval_sec=0.05,
    )
    api = Api(http_session, server.url)
    assert (await api.get(f"/api/v1/apps/{app['id']}/files/big.bin")).status == 404
    assert (await api.get(f"/api/v1/apps/{app['id']}/files")).json["files"] == []
    # ...and its tmp file is reclaimed once it is older than the TTL.
    async with asyncio.timeout(10):
        while leftover.exists():  # noqa: ASYNC110 (no event to await on a file system)
            await asyncio.sleep(0.02)
    assert [p for p in root.rglob("*") if p.is_file()] == []
