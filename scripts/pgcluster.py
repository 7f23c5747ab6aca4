"""A throwaway PostgreSQL 15 cluster from Debian's server binaries, for checks and
benchmarks that need the real server of a normal installation (extensions such as
plpgsql_check, or a durable data directory) rather than the embedded one.

`initdb` and `pg_ctl` refuse to run as root: as root the cluster belongs to the
`postgres` OS user and lives in a directory that user owns. It listens on a Unix socket
in its own directory only (no TCP), and is stopped and removed on exit.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path(os.environ.get("PICLOUD_PG15_BIN", "/usr/lib/postgresql/15/bin"))


def _as_owner(owner: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


@contextlib.contextmanager
def pg15_cluster(
    *, base: Path | None = None, settings: dict[str, str] | None = None
) -> Iterator[str]:
    """Start a fresh cluster (in `base`, a new temporary directory by default) and yield
    a conninfo for its `postgres` database; stop and delete it afterwards."""
    if not (PG_BIN / "initdb").exists():
        raise SystemExit(f"PostgreSQL 15 server binaries are missing in {PG_BIN}")
    owner = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="picloud-pg15-", dir=base))
    if owner:
        pw = pwd.getpwnam(owner)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, sock = root / "data", root
    user = owner or pwd.getpwuid(os.geteuid()).pw_name
    try:
        subprocess.run(
            _as_owner(owner, [str(PG_BIN / "initdb"), "-D", str(data), "-U", user, "-A", "trust"]),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        opts = {"listen_addresses": "''", "unix_socket_directories": f"'{sock}'"}
        opts.update(settings or {})
        flags = " ".join(f"-c {k}={v}" for k, v in opts.items())
        subprocess.run(
            _as_owner(
                owner,
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(data),
                    "-w",
                    "-o",
                    flags,
                    "-l",
                    str(root / "log"),
                    "start",
                ],
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        try:
            yield f"host={sock} port=5432 user={user} dbname=postgres"
        finally:
            subprocess.run(
                _as_owner(owner, [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                check=False,
                stdout=subprocess.DEVNULL,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
