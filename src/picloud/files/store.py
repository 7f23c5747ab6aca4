"""Blobs on disk: durable, streamed, never visible half-written.

Layout: ``<files_root>/<app_id>/<blob[0:2]>/<blob>``, where ``blob`` is a random id
(32 hex digits) chosen per upload; user paths never reach the file system, so a path
cannot escape the root. Writing one:

1. stream the body into ``<blob>.tmp.<random>`` (created with O_EXCL), hashing and
   counting as it goes, stopping at the size limit;
2. fsync the file, rename it to ``<blob>``, fsync the directory;
3. only then commit the ``picloud.files`` row that points at ``<blob>`` (the caller);
4. after the commit, unlink the blob the row pointed at before (if any).

A crash in 1-2 leaves a ``*.tmp.*`` file, which the orphan sweeper deletes once it is
older than PICLOUD_FILES_ORPHAN_TMP_TTL_SEC. A crash between 2 and 3, or between the
commit and 4 (or a DELETE from psql), leaves a complete blob no row points at:
invisible to users, only wasted space (the sweeper does not cross-check the database).
No crash can leave a row without its complete blob.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

CHUNK_BYTES = 256 * 1024
TMP_MARKER = ".tmp."


class BlobTooLarge(Exception):
    """The body grew past the size limit while it was being written."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the limit of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class WrittenBlob:
    blob: str
    size: int
    sha256: str


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in a worker thread. If the caller is cancelled meanwhile, wait for the
    thread to finish before re-raising, so the caller's clean-up never races the thread
    (e.g. closing a file descriptor it is still writing to)."""
    future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await future
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, app_id: uuid.UUID | str, blob: str) -> Path:
        if len(blob) != 32 or any(c not in "0123456789abcdef" for c in blob):
            raise ValueError(f"not a blob id: {blob!r}")
        return self.root / str(app_id) / blob[:2] / blob

    def _prepare_dir(self, directory: Path) -> None:
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            _fsync_dir(directory.parent)
            _fsync_dir(directory.parent.parent)

    async def write(
        self, app_id: uuid.UUID | str, chunks: AsyncIterator[bytes], max_bytes: int
    ) -> WrittenBlob:
        """Stream ``chunks`` into a new durable blob (steps 1-2 above); raises BlobTooLarge
        past ``max_bytes``. On any failure nothing but, at worst, a tmp file remains."""
        blob = uuid.uuid4().hex
        final = self.path_of(app_id, blob)
        await blocking(self._prepare_dir, final.parent)
        tmp = final.with_name(f"{blob}{TMP_MARKER}{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        hasher = hashlib.sha256()
        size = 0
        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(max_bytes)
                    hasher.update(chunk)
                    await blocking(_write_all, fd, chunk)
                await blocking(os.fsync, fd)
            finally:
                os.close(fd)
            await blocking(os.replace, tmp, final)
            await blocking(_fsync_dir, final.parent)
        except BaseException:
            _unlink(tmp)
            raise
        return WrittenBlob(blob, size, hasher.hexdigest())

    def open(self, app_id: uuid.UUID | str, blob: str) -> IO[bytes]:
        """The blob opened for reading (FileNotFoundError when it is gone). Blocking."""
        return open(self.path_of(app_id, blob), "rb")

    async def read_chunks(self, handle: IO[bytes]) -> AsyncIterator[bytes]:
        while chunk := await blocking(handle.read, CHUNK_BYTES):
            yield chunk

    def discard(self, app_id: uuid.UUID | str, blob: str) -> None:
        """Unlink a blob no row points at any more (missing is fine). Blocking but quick."""
        _unlink(self.path_of(app_id, blob))
