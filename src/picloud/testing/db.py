"""Database fixtures: one PostgreSQL per test session, a template database migrated once,
and a fresh database cloned from it for every test (pytest-postgresql's DatabaseJanitor).

The server is the embedded one (pgserver, on tmpfs when there is one), or the server at
``PICLOUD_TEST_DATABASE_URL`` when that is set.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from picloud.db import Row

if TYPE_CHECKING:
    from pytest_postgresql.janitor import DatabaseJanitor

TEST_DATABASE_ENV = "PICLOUD_TEST_DATABASE_URL"


@dataclass(frozen=True)
class PgServer:
    """A PostgreSQL server the tests may create and drop databases on."""

    conninfo: str

    @property
    def params(self) -> dict[str, str]:
        return {k: str(v) for k, v in conninfo_to_dict(self.conninfo).items()}

    def url(self, dbname: str) -> str:
        return make_conninfo(self.conninfo, dbname=dbname)

    def janitor(self, dbname: str, template: str | None = None, **kw: Any) -> DatabaseJanitor:
        # Imported here: the plugin is loaded by every pytest run in an environment that
        # has picloud, and only the database fixtures need pytest-postgresql.
        from pytest_postgresql.janitor import DatabaseJanitor

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
def picloud_pg() -> Iterator[PgServer]:
    """The session's PostgreSQL: ``PICLOUD_TEST_DATABASE_URL``, or an embedded one."""
    url = os.environ.get(TEST_DATABASE_ENV)
    if url:
        yield PgServer(url)
        return
    from picloud.embedded import embedded_postgres

    with embedded_postgres(_scratch_root(), cleanup_mode="delete") as uri:
        yield PgServer(uri)


@pytest.fixture(scope="session")
def picloud_template_db(picloud_pg: PgServer) -> Iterator[str]:
    """The name of a database migrated once per session, cloned by every test."""
    from picloud.migrate import migrate

    name = f"picloud_tmpl_{os.getpid()}"
    janitor = picloud_pg.janitor(name, as_template=True)
    janitor.drop()
    janitor.init()
    migrate(picloud_pg.url(name))
    yield name
    janitor.drop()


@pytest.fixture
def picloud_database(picloud_pg: PgServer, picloud_template_db: str) -> Iterator[str]:
    """The URL of a fresh, migrated database of this test's own (dropped afterwards)."""
    name = f"picloud_t_{uuid.uuid4().hex[:16]}"
    janitor = picloud_pg.janitor(name, picloud_template_db)
    janitor.init()
    try:
        yield picloud_pg.url(name)
    finally:
        janitor.drop()


@pytest.fixture
def picloud_db(picloud_database: str) -> Iterator[psycopg.Connection[Row]]:
    """An autocommit psycopg connection (rows as dicts) to this test's database."""
    with psycopg.connect(picloud_database, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def make_app(conn: psycopg.Connection[Row], slug: str = "app") -> uuid.UUID:
    """A new app with this slug (and name), made by picloud.create_app; its id."""
    row = conn.execute("SELECT id FROM picloud.create_app(%s, %s)", (slug, slug)).fetchone()
    assert row is not None
    app_id: uuid.UUID = row["id"]
    return app_id
