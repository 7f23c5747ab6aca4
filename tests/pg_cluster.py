"""A throw-away PostgreSQL cluster of its own, to stop, restart and crash on purpose.

The session's shared database must never go away under other tests, so outage tests (and
bench/chaos.py) run one of these: ``initdb`` into a temporary directory, a unix socket
there, trust authentication, no TCP. ``pg_ctl`` refuses to run as root, so as root every
server command runs as an unprivileged OS user (``postgres`` or ``pgserver``, whichever
exists). The binaries are PostgreSQL's from ``bindir``: by default those bundled with
pgserver (always installed with the dev dependencies). ``pg15_cluster`` runs Debian's
PostgreSQL 15 instead, on disk, for the SQL lint (extensions) and durable benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg


def bundled_bindir() -> Path:
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def _server_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, but there is no 'postgres' or 'pgserver' OS user")


# Debian's server binaries (postgresql-15), with its extensions (plpgsql_check).
DEBIAN_PG15_BIN = Path(os.environ.get("PICLOUD_PG15_BIN", "/usr/lib/postgresql/15/bin"))


class Cluster:
    def __init__(
        self,
        bindir: Path | None = None,
        *,
        base: Path | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.bindir = bindir or bundled_bindir()
        self.settings = {"max_connections": "200", **(settings or {})}
        shm = Path("/dev/shm")
        where = base or (shm if shm.is_dir() and os.access(shm, os.W_OK) else None)
        # Short: the socket path must fit in 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="pgc-", dir=where))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.user = _server_user()
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.root.chmod(0o755)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.root}"

    def _run(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        kw: dict[str, Any] = {}
        if self.user is not None:
            kw = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
            **kw,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def init(self) -> Cluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        return self

    def start(self) -> None:
        flags = " ".join(f"-c {name}={value}" for name, value in self.settings.items())
        options = f"-k {self.root} -c listen_addresses='' {flags}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        out = subprocess.run(
            [str(self.bindir / "pg_isready"), "-h", str(self.root), "-q"], check=False
        )
        return out.returncode == 0

    def wait_ready(self, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise TimeoutError(f"the cluster did not accept connections within {within}s")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def pg15_cluster(
    *, base: Path | None = None, settings: dict[str, str] | None = None
) -> Iterator[str]:
    """A started cluster of Debian's PostgreSQL 15 with default durability (a data
    directory on disk, fsync on), in ``base`` (the system's temporary directory by
    default); yields the URL of its ``postgres`` database, and removes it afterwards."""
    if not (DEBIAN_PG15_BIN / "initdb").exists():
        raise SystemExit(f"PostgreSQL 15 server binaries are missing in {DEBIAN_PG15_BIN}")
    cluster = Cluster(
        DEBIAN_PG15_BIN, base=base or Path(tempfile.gettempdir()), settings=settings
    ).init()
    try:
        cluster.start()
        yield cluster.url()
    finally:
        cluster.destroy()
