"""The orphan sweeper: old tmp files go, young tmp and real blobs stay, no root is fine."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from picloud.files.sweeper import SweepStats, sweep
from tests.fix_server import ServerFactory

HOUR = 3600.0


def make_file(path: Path, data: bytes, age_sec: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = time.time() - age_sec
    os.utime(path, (stamp, stamp))
    return path


def test_deletes_old_tmp(tmp_path: Path) -> None:
    old = make_file(tmp_path / "app" / "ab" / "abcd.tmp.1234", b"x" * 100, 2 * HOUR)
    stats = sweep(tmp_path, HOUR)
    assert not old.exists()
    assert stats == SweepStats(dirs_walked=3, files_deleted=1, bytes_reclaimed=100)


def test_keeps_young_tmp(tmp_path: Path) -> None:
    young = make_file(tmp_path / "app" / "ab" / "abcd.tmp.5678", b"x" * 10, 60)
    stats = sweep(tmp_path, HOUR)
    assert young.exists()
    assert (stats.files_deleted, stats.bytes_reclaimed) == (0, 0)


def test_keeps_non_tmp(tmp_path: Path) -> None:
    kept = [
        make_file(tmp_path / "app" / "ab" / "abcd", b"blob", 100 * HOUR),
        make_file(tmp_path / "app" / "ab" / "abcd.tmp", b"no random part", 100 * HOUR),
        make_file(tmp_path / "app" / "ab" / "tmp.abcd", b"wrong place", 100 * HOUR),
    ]
    stats = sweep(tmp_path, HOUR)
    assert all(p.exists() for p in kept)
    assert stats.files_deleted == 0


def test_missing_root_is_not_an_error(tmp_path: Path) -> None:
    stats = sweep(tmp_path / "never-created", HOUR)
    assert stats == SweepStats(0, 0, 0, root_missing=True)


async def test_sweeper_role_sweeps_and_logs(
    server_factory: ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "swept-files"
    old = make_file(root / "app" / "00" / "0000.tmp.aa", b"x" * 7, 10.0)
    caplog.set_level(logging.INFO, logger="picloud.files.sweeper")
    server = await server_factory(
        roles=frozenset({"sweeper"}),
        files_root=root,
        files_orphan_tmp_ttl_sec=5.0,
        files_orphan_sweep_interval_sec=0.05,
    )
    deadline = time.monotonic() + 10
    sweeper = server.state.roles.sweeper
    assert sweeper is not None
    while old.exists() or sweeper.last is None:
        assert time.monotonic() < deadline, "the sweeper did not run"
        await asyncio.sleep(0.02)
    assert "1 files deleted, 7 bytes reclaimed" in caplog.text
    assert "dirs walked" in caplog.text
    # It keeps running every interval: a new orphan is collected too.
    later = make_file(root / "app" / "01" / "0001.tmp.bb", b"y", 10.0)
    while later.exists():
        assert time.monotonic() < deadline, "the sweeper stopped"
        await asyncio.sleep(0.02)
