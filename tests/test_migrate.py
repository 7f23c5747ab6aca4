"""Migrations: idempotent, serialised, and in step with the committed schema snapshot."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from picloud.migrate import migrate
from picloud.queries import q
from picloud.schema_snapshot import schema_snapshot
from tests.threads import run_threads

SNAPSHOT = Path(__file__).parent / "schema_snapshot.txt"


def test_fresh_migrate_matches_committed_snapshot(empty_database: str) -> None:
    result = migrate(empty_database)
    assert result.applied, "a fresh database gets every migration"
    with psycopg.connect(empty_database) as conn:
        current = schema_snapshot(conn)
    if os.environ.get("PICLOUD_BLESS_SCHEMA") == "1":
        SNAPSHOT.write_text(current)
    assert current == SNAPSHOT.read_text(), (
        "schema differs from tests/schema_snapshot.txt; if intended, re-bless with "
        "PICLOUD_BLESS_SCHEMA=1 pytest tests/test_migrate.py"
    )


def test_second_migrate_is_a_no_op(empty_database: str) -> None:
    migrate(empty_database)
    with psycopg.connect(empty_database) as conn:
        before = schema_snapshot(conn)
    again = migrate(empty_database)
    assert again.applied == []
    assert again.sql_files, "the idempotent sql/ files are re-applied every time"
    with psycopg.connect(empty_database) as conn:
        assert schema_snapshot(conn) == before


def test_concurrent_migrates_are_serialised(empty_database: str) -> None:
    run_threads(lambda _: migrate(empty_database), range(3))


def test_every_table_and_function_is_commented(database: str) -> None:
    with psycopg.connect(database) as conn:
        missing = conn.execute(q("objects_without_comment")).fetchall()
    assert missing == []


def test_sql_files_are_only_sql() -> None:
    sql_dir = Path(__file__).parent.parent / "sql"
    assert sorted(p.suffix for p in sql_dir.iterdir()) == [".sql"] * len(list(sql_dir.iterdir()))
