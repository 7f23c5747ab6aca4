"""A 64 MiB file up and down through the client without buffering it: measured in a
process of its own, so the test runner's memory does not blur the figure."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from picloud.testing import PiCloudApp

SIZE = 64 * 1024 * 1024
LIMIT = 8 * 1024 * 1024


def test_64_mib_round_trip_in_bounded_memory(picloud_app: PiCloudApp, tmp_path: Path) -> None:
    source, target = tmp_path / "big.bin", tmp_path / "copy.bin"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(SIZE // (1024 * 1024)):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            out.write(chunk)
    probe = Path(__file__).with_name("memory_probe.py")
    args = [picloud_app.server.url, picloud_app.key, picloud_app.id, str(source), str(target)]
    done = subprocess.run(
        [sys.executable, str(probe), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    print(report)

    assert report["uploaded_size"] == SIZE == report["downloaded"]
    assert report["uploaded_sha256"] == digest.hexdigest()
    with target.open("rb") as copy:
        assert hashlib.file_digest(copy, "sha256").hexdigest() == digest.hexdigest()
    assert report["peak_rss_growth_bytes"] < LIMIT, report
    assert report["sampled_rss_growth_bytes"] < LIMIT, report
    assert report["tracemalloc_peak_bytes"] < LIMIT, report
