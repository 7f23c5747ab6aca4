"""Database connections: where the database is, and the async pool the server uses.

The pool fails fast and recovers fast: a request waits at most
``PICLOUD_DB_ACQUIRE_TIMEOUT_MS`` for a connection (then PoolTimeout, answered 503), the
pool's reconnect back-off is capped at ``RECONNECT_CAP_SEC`` and it never gives up, and a
probe watches the database: when it stops answering, the probe drops the pool's broken
connections, and when it answers again the probe drops the remaining broken ones at once,
so the first request after an outage gets a live connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from picloud import jsonnum
from picloud.embedded import embedded_postgres
from picloud.queries import q
from picloud.settings import Settings

Row = dict[str, Any]

# JSON from the database never fails on a number the encoder cannot hold.
jsonnum.install()

log = logging.getLogger(__name__)

RECONNECT_FIRST_SEC = 0.05
RECONNECT_CAP_SEC = 0.25
PROBE_UP_SEC = 1.0  # how often the probe checks a database that answers
PROBE_DOWN_SEC = 0.2  # ... and one that does not
PROBE_TIMEOUT_SEC = 0.8
CONNECT_TIMEOUT_SEC = 5


def new_node_id() -> str:
    """A process's name among the nodes sharing a database (host, pid, a random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def application_name(role: str, node_id: str) -> str:
    """``picloud <role> <node id>``: who a connection is, in pg_stat_activity."""
    return f"picloud {role} {node_id}"[:63]  # (PostgreSQL keeps 63 bytes)


@contextlib.contextmanager
def database_url(settings: Settings, role: str = "cli") -> Iterator[str]:
    """The configured DATABASE_URL, or the embedded server's URI while it runs.

    Connections made with it name themselves ``picloud <role> <node id>`` (unless the URL
    sets an application_name); the pool and the relay name their own connections.
    """
    if settings.database_url:
        yield _named(settings.database_url, role)
    else:
        with embedded_postgres(settings.data_dir) as uri:
            yield _named(uri, role)


def _named(conninfo: str, role: str) -> str:
    try:
        if "application_name" in conninfo_to_dict(conninfo):
            return conninfo
    except psycopg.ProgrammingError:
        return conninfo  # malformed: connecting reports it
    name = application_name(role, new_node_id())
    if conninfo.startswith(("postgres://", "postgresql://")):
        # A URL stays a URL (what messages and `picloud db-url` show is what was given).
        sep = "&" if "?" in conninfo else "?"
        return f"{conninfo}{sep}{urllib.parse.urlencode({'application_name': name})}"
    return make_conninfo(conninfo, application_name=name)


def session_settings(settings: Settings) -> dict[str, str]:
    """Per-connection settings the SQL functions read with current_setting()."""
    return {
        "picloud.base_domain": settings.base_domain,
        "picloud.max_message_bytes": str(settings.max_message_bytes),
        "picloud.max_batch_messages": str(settings.max_batch_messages),
        "picloud.sql_handler_schemas": ",".join(settings.sql_handler_schemas),
        "picloud.dispatch_backoff_base_ms": str(settings.dispatch_backoff_base_ms),
        "picloud.dispatch_backoff_cap_ms": str(settings.dispatch_backoff_cap_ms),
    }


def connect_options(settings: Settings) -> str:
    """A libpq ``options`` string that sets session_settings() at connect time."""
    return " ".join(f"-c {k}={v}" for k, v in session_settings(settings).items())


class _CappedBackoff(AttemptWithBackoff):
    """The pool's reconnect schedule: fast first retry, never longer than the cap."""

    INITIAL_DELAY = RECONNECT_FIRST_SEC

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, RECONNECT_CAP_SEC)


class Pool(AsyncConnectionPool[psycopg.AsyncConnection[Row]]):
    """psycopg's pool with a capped reconnect back-off and a probe of the database."""

    last_error = ""  # why the last ping failed
    _kick: asyncio.Event | None = None

    async def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False
    ) -> None:
        # psycopg_pool's back-off doubles without bound (8-17 s to the first success after
        # a 20 s outage); this is its one hook for another schedule.
        if attempt is None:
            attempt = _CappedBackoff(timeout=self.reconnect_timeout)
        await super()._add_connection(attempt, growing)

    # (An async context manager as psycopg_pool's is, if not its generator-based kind.)
    def connection(  # type: ignore[override]
        self,
        timeout: float | None = None,
    ) -> _Lease:
        """A pooled connection for an ``async with`` block, as psycopg_pool's
        ``connection()`` gives it (the transaction, if one was left open, committed or
        rolled back as the block ends; the connection back to the pool), at less cost per
        request: one plain object instead of two generator-based context managers, and no
        connection lock taken to commit when no transaction is open (autocommit, the
        server's every statement)."""
        return _Lease(self, timeout)

    def probe_now(self) -> None:
        if self._kick is not None:
            self._kick.set()

    async def ping(self, within: float = PROBE_TIMEOUT_SEC) -> bool:
        """Whether the database answers a query on a pooled connection within ``within``."""
        try:
            async with asyncio.timeout(within):
                async with super().connection(within) as conn:
                    await conn.execute(q("ping"))
        except (psycopg.Error, PoolTimeout, TimeoutError) as exc:
            self.last_error = str(exc).strip() or type(exc).__name__
            return False
        return True

    async def watch(self) -> None:
        """The probe (runs while the pool is open)."""
        self._kick = kick = asyncio.Event()
        down_since: float | None = None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(kick.wait(), PROBE_DOWN_SEC if down_since else PROBE_UP_SEC)
            kick.clear()
            if await self.ping():
                if down_since is not None:
                    await self._drop_broken()
                    log.warning(
                        "database reachable again after %.1fs", time.monotonic() - down_since
                    )
                    down_since = None
                continue
            if down_since is None:
                down_since = time.monotonic()
                log.warning(
                    "database unreachable (%s); requests answer 503 until it is back",
                    self.last_error,
                )
            await self._drop_broken()

    async def _drop_broken(self) -> None:
        """Check the idle connections, replacing the broken ones (a reconnect starts).

        Not under a timeout: check() holds the idle connections while it runs, and
        cancelling it would lose them from the pool.
        """
        with contextlib.suppress(psycopg.Error):
            await self.check()


class _Lease:
    """``async with pool.connection() as conn`` (Pool.connection)."""

    __slots__ = ("_conn", "_pool", "_timeout")

    def __init__(self, pool: Pool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._conn: psycopg.AsyncConnection[Row] | None = None

    async def __aenter__(self) -> psycopg.AsyncConnection[Row]:
        try:
            self._conn = await self._pool.getconn(self._timeout)
        except PoolTimeout:
            self._pool.probe_now()  # none to be had: look at once
            raise
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._conn
        assert conn is not None
        self._conn = None
        try:
            if conn.pgconn.transaction_status != TransactionStatus.IDLE and not conn.closed:
                # Commit on success, roll back on error: psycopg's connection block.
                await conn.__aexit__(exc_type, exc, tb)
        except psycopg.OperationalError:
            self._pool.probe_now()
            raise
        finally:
            await self._pool.putconn(conn)
        if isinstance(exc, psycopg.OperationalError | PoolTimeout):
            self._pool.probe_now()  # a broken connection, or none to be had: look at once


class _QuietReconnects(logging.Filter):
    """The probe reports an outage once; psycopg_pool would warn on every reconnect."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error connecting in")


logging.getLogger("psycopg.pool").addFilter(_QuietReconnects())


@contextlib.asynccontextmanager
async def open_pool(
    conninfo: str,
    settings: Settings,
    *,
    min_size: int = 2,
    max_size: int = 16,
    role: str = "serve",
    node_id: str = "",
) -> AsyncIterator[Pool]:
    pool = Pool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={
            "row_factory": dict_row,
            "autocommit": True,
            "options": connect_options(settings),
            "application_name": application_name(role, node_id),
            "connect_timeout": CONNECT_TIMEOUT_SEC,
        },
        connection_class=psycopg.AsyncConnection[Row],
        name="picloud",
        timeout=settings.db_acquire_timeout_ms / 1000,
        reconnect_timeout=math.inf,  # keep trying: the database comes back
    )
    await pool.open(wait=True, timeout=30)
    probe = asyncio.create_task(pool.watch(), name="picloud-db-probe")
    try:
        yield pool
    finally:
        probe.cancel()
        await asyncio.gather(probe, return_exceptions=True)
        await pool.close()
