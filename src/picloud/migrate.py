"""Schema migration: versioned DDL through yandex-pgmigrate, then the idempotent ``sql/``.

pgmigrate's afterAll callbacks run only when a migration was applied, so the ``sql/``
files are re-applied here on every migrate. A session advisory lock on a separate
connection serialises concurrent migrations (several nodes starting at once).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg

from picloud.paths import data_root

log = logging.getLogger(__name__)

MIGRATE_LOCK_KEY = 0x70_69_63_6C_6F_75_64  # "picloud"


@dataclass(frozen=True)
class MigrateResult:
    applied: list[int]
    sql_files: list[str]


def _pending_versions(conninfo: str, base: Path) -> list[int]:
    versions = sorted(
        int(p.name[1:].split("__", 1)[0]) for p in (base / "migrations").glob("V*.sql")
    )
    with psycopg.connect(conninfo) as conn:
        exists = conn.execute("SELECT to_regclass('public.schema_version') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return versions
        done = {row[0] for row in conn.execute("SELECT version FROM public.schema_version")}
    return [v for v in versions if v not in done]


def _run_pgmigrate(conninfo: str, base: Path) -> None:
    import pgmigrate

    args = argparse.Namespace(conn=conninfo, target="latest", base_dir=str(base))
    config = pgmigrate.get_config(str(base), args)
    try:
        pgmigrate.migrate(config)
    finally:
        config.conn_instance.close()


def apply_sql(conn: psycopg.Connection[object], sql_dir: Path) -> list[str]:
    """Apply every ``sql/*.sql`` file, in name order, in the caller's transaction."""
    names = []
    for path in sorted(sql_dir.glob("*.sql")):
        conn.execute(path.read_text(encoding="utf-8").encode())
        names.append(path.name)
    return names


def migrate(conninfo: str, base: Path | None = None) -> MigrateResult:
    """Bring the database at ``conninfo`` up to date. Running it twice changes nothing."""
    base = base or data_root()
    with psycopg.connect(conninfo, autocommit=True) as lock_conn:
        lock_conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_KEY,))
        try:
            pending = _pending_versions(conninfo, base)
            if pending:
                _run_pgmigrate(conninfo, base)
                log.info("applied migrations %s", pending)
            with psycopg.connect(conninfo) as conn:
                names = apply_sql(conn, base / "sql")
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))
    return MigrateResult(applied=pending, sql_files=names)
