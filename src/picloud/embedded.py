"""The embedded PostgreSQL used when no DATABASE_URL is set (the ``pgserver`` package)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _prune_dead_holders(pgdata: Path) -> None:
    """Drop PIDs of processes that died without detaching (e.g. SIGKILL).

    pgserver ref-counts the processes attached to a data directory and the last one
    stops the server; a dead PID left in the list would keep it running for ever.
    """
    pid_file = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if alive != pids:
        pid_file.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def embedded_postgres(data_dir: Path, *, cleanup_mode: str = "stop") -> Iterator[str]:
    """Start (or attach to) the private PostgreSQL under ``data_dir/pg``; yield its URI.

    The data survives restarts; the server stops when the last attached process leaves.
    """
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"runtime-{os.getuid()}"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    import pgserver  # imported late: it starts nothing until asked, but is slow to import

    pgdata = (data_dir / "pg").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    _prune_dead_holders(pgdata)
    server: Any = pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)  # type: ignore[attr-defined]
    uri: str = server.get_uri()
    log.info("embedded PostgreSQL at %s (data in %s)", uri, pgdata)
    try:
        yield uri
    finally:
        server.cleanup()
