"""Run as a separate process by test_files_memory: upload a large file from disk and
download it back to disk with the async client, and print (as JSON) how much the
process's memory grew meanwhile, measured three ways: the kernel's peak RSS
(``ru_maxrss``, against the peak before), the highest current RSS sampled every 2 ms
(``/proc/self/statm``, against the RSS before), and tracemalloc's peak of Python
allocations."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import threading
import tracemalloc
from pathlib import Path

from picloud_client import AsyncPiCloud


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler(threading.Thread):
    """The highest current RSS seen while it runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.highest = current_rss_bytes()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.002):
            self.highest = max(self.highest, current_rss_bytes())


async def main(url: str, key: str, app_id: str, source: Path, target: Path) -> dict[str, int]:
    async with AsyncPiCloud(url, api_key=key) as pc:
        app = pc.app(app_id)
        # Warm up every code path (imports, connection pool, worker threads) first.
        warm = source.with_name("warm.bin")
        warm.write_bytes(b"w" * 200_000)
        await app.upload("warm.bin", warm)
        await app.download("warm.bin", target)

        rss_before = peak_rss_kib()
        sampler = RssSampler()
        current_before = current_rss_bytes()
        sampler.start()
        tracemalloc.start()
        uploaded = await app.upload("big.bin", source)
        downloaded = await app.download("big.bin", target)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        sampler.done.set()
        sampler.join()
        rss_after = peak_rss_kib()
    return {
        "uploaded_size": uploaded["size"],
        "uploaded_sha256": uploaded["sha256"],  # type: ignore[dict-item]
        "downloaded": downloaded,
        "peak_rss_growth_bytes": (rss_after - rss_before) * 1024,
        "sampled_rss_growth_bytes": sampler.highest - current_before,
        "tracemalloc_peak_bytes": traced_peak,
    }


if __name__ == "__main__":
    url, key, app_id, source, target = sys.argv[1:6]
    print(json.dumps(asyncio.run(main(url, key, app_id, Path(source), Path(target)))))
