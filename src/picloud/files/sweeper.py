"""The orphan sweeper role: deletes ``*.tmp.*`` blobs left behind by interrupted uploads.

Every PICLOUD_FILES_ORPHAN_SWEEP_INTERVAL_SEC (first run at start-up) it walks
PICLOUD_FILES_ROOT and unlinks tmp files whose mtime is older than
PICLOUD_FILES_ORPHAN_TMP_TTL_SEC. An upload in progress keeps touching its tmp file, so
only stalled or abandoned ones age out. Final blobs are never touched. A missing root is
not an error (nothing has been uploaded yet).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from picloud.node import Node, pause

log = logging.getLogger(__name__)

TMP_PATTERN = "*.tmp.*"


@dataclass(frozen=True)
class SweepStats:
    dirs_walked: int
    files_deleted: int
    bytes_reclaimed: int
    root_missing: bool = False


def sweep(root: Path, ttl_sec: float, now: float | None = None) -> SweepStats:
    """Delete ``*.tmp.*`` files under ``root`` older than ``ttl_sec``. Blocking."""
    if not root.is_dir():
        return SweepStats(0, 0, 0, root_missing=True)
    cutoff = (time.time() if now is None else now) - ttl_sec
    dirs = deleted = reclaimed = 0
    for directory, _, names in os.walk(root):
        dirs += 1
        for name in fnmatch.filter(names, TMP_PATTERN):
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
                if st.st_mtime >= cutoff:
                    continue
                os.unlink(path)
            except FileNotFoundError:
                continue  # renamed or removed meanwhile: it was not an orphan after all
            deleted += 1
            reclaimed += st.st_size
    return SweepStats(dirs, deleted, reclaimed)


class Sweeper:
    """The role; ``last`` is what its latest sweep found (None before the first)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.last: SweepStats | None = None

    async def run(self) -> None:
        settings, stopping = self.node.settings, self.node.stopping
        while not stopping.is_set():
            stats = await asyncio.to_thread(
                sweep, settings.files_root, settings.files_orphan_tmp_ttl_sec
            )
            if stats.root_missing:
                log.info(
                    "files sweep: root %s does not exist yet; nothing to do", settings.files_root
                )
            else:
                log.info(
                    "files sweep: %d dirs walked, %d files deleted, %d bytes reclaimed",
                    stats.dirs_walked,
                    stats.files_deleted,
                    stats.bytes_reclaimed,
                )
            self.last = stats
            await pause(stopping, settings.files_orphan_sweep_interval_sec)
