"""Database fixtures: one PostgreSQL per test session, a template migrated once, and a
fresh database cloned from it for every test (pytest-postgresql's DatabaseJanitor).

The server is the embedded one (pgserver, on tmpfs when there is one), or the server at
PICLOUD_TEST_DATABASE_URL when that is set. Tests never skip for lack of a database.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from pytest_postgresql.janitor import DatabaseJanitor

from picloud.db import Row
from picloud.embedded import embedded_postgres
from picloud.migrate import migrate


@dataclass(frozen=True)
class PgServer:
    conninfo: str

    @property
    def params(self) -> dict[str, str]:
        return {k: str(v) for k, v in conninfo_to_dict(self.conninfo).items()}

    def url(self, dbname: str) -> str:
        return make_conninfo(self.conninfo, dbname=dbname)

    def janitor(self, dbname: str, template: str | None = None, **kw: bool) -> DatabaseJanitor:
        p = self.params
        return DatabaseJanitor(
            user=p.get("user", "postgres"),
            host=p.get("host", "localhost"),
            port=p.get("port", "5432"),
            password=p.get("password") or None,
            dbname=dbname,
            template_dbname=template,
            maintenance_dbname=p.get("dbname", "postgres"),
            **kw,
        )


def _scratch_root() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="picloud-test-", dir=base))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    url = os.environ.get("PICLOUD_TEST_DATABASE_URL")
    if url:
        yield PgServer(url)
        return
    with embedded_postgres(_scratch_root(), cleanup_mode="delete") as uri:
        yield PgServer(uri)


@pytest.fixture(scope="session")
def template_db(pg_server: PgServer) -> Iterator[str]:
    """A database migrated once per session, cloned by every test."""
    name = f"picloud_tmpl_{os.getpid()}"
    janitor = pg_server.janitor(name, as_template=True)
    janitor.drop()
    janitor.init()
    migrate(pg_server.url(name))
    yield name
    janitor.drop()


@pytest.fixture
def database(pg_server: PgServer, template_db: str) -> Iterator[str]:
    """The URL of a fresh, migrated database of this test's own."""
    name = f"picloud_t_{uuid.uuid4().hex[:16]}"
    janitor = pg_server.janitor(name, template_db)
    janitor.init()
    try:
        yield pg_server.url(name)
    finally:
        janitor.drop()


def make_app(db: psycopg.Connection[Row], slug: str = "app") -> uuid.UUID:
    """A new app with this slug (and name), made in SQL; its id."""
    row = db.execute(
        "INSERT INTO picloud.apps (slug, name) VALUES (%s, %s) RETURNING id", (slug, slug)
    ).fetchone()
    assert row is not None
    app_id: uuid.UUID = row["id"]
    return app_id


@pytest.fixture
def db(database: str) -> Iterator[psycopg.Connection[Row]]:
    """An autocommit connection (rows as dicts) to this test's database."""
    with psycopg.connect(database, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def empty_database(pg_server: PgServer) -> Iterator[str]:
    """A database with nothing in it (for migration tests)."""
    name = f"picloud_e_{uuid.uuid4().hex[:16]}"
    janitor = pg_server.janitor(name)
    janitor.init()
    try:
        yield pg_server.url(name)
    finally:
        janitor.drop()
