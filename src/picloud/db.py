"""Database connections: where the database is, and the async pool the server uses."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from picloud import jsonnum
from picloud.embedded import embedded_postgres
from picloud.settings import Settings

Row = dict[str, Any]

# JSON from the database never fails on a number the encoder cannot hold.
jsonnum.install()


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The configured DATABASE_URL, or the embedded server's URI while it runs."""
    if settings.database_url:
        yield settings.database_url
    else:
        with embedded_postgres(settings.data_dir) as uri:
            yield uri


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


@contextlib.asynccontextmanager
async def open_pool(
    conninfo: str, settings: Settings, *, min_size: int = 2, max_size: int = 16
) -> AsyncIterator[AsyncConnectionPool[psycopg.AsyncConnection[Row]]]:
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={
            "row_factory": dict_row,
            "autocommit": True,
            "options": connect_options(settings),
        },
        connection_class=psycopg.AsyncConnection[Row],
        name="picloud",
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield pool
    finally:
        await pool.close()
