"""Database fixtures of the project's own tests: thin names over the ``picloud.testing``
plugin's (one PostgreSQL per session, a template migrated once, a clone per test).

``database`` is the URL of this test's database (``picloud_database``), ``db`` an
autocommit dict-row connection to it (``picloud_db``); both share the plugin's session
server and template, so a test may mix the two sets of names.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from picloud.db import Row
from picloud.testing.db import PgServer, make_app

__all__ = ["PgServer", "database", "db", "empty_database", "make_app", "pg_server", "template_db"]


@pytest.fixture(scope="session")
def pg_server(picloud_pg: PgServer) -> PgServer:
    return picloud_pg


@pytest.fixture(scope="session")
def template_db(picloud_template_db: str) -> str:
    """A database migrated once per session, cloned by every test."""
    return picloud_template_db


@pytest.fixture
def database(picloud_database: str) -> str:
    """The URL of a fresh, migrated database of this test's own."""
    return picloud_database


@pytest.fixture
def db(picloud_db: psycopg.Connection[Row]) -> psycopg.Connection[Row]:
    """An autocommit connection (rows as dicts) to this test's database."""
    return picloud_db


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
