"""Helpers shared by the CLI commands: settings, a database connection, output."""

from __future__ import annotations

import argparse
import contextlib
import sys
import uuid
from collections.abc import Iterator
from typing import Any, TypeAlias

import orjson
import psycopg
from psycopg.rows import dict_row

from picloud.db import Row, connect_options, database_url
from picloud.queries import q
from picloud.settings import Settings, load_settings

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CommandError(Exception):
    """A command failed in a way the user can fix; printed without a traceback."""


@contextlib.contextmanager
def connect(settings: Settings | None = None) -> Iterator[psycopg.Connection[Row]]:
    """An autocommit connection to the configured (or embedded) database."""
    settings = settings or load_settings()
    with (
        database_url(settings) as url,
        psycopg.connect(
            url, autocommit=True, row_factory=dict_row, options=connect_options(settings)
        ) as conn,
    ):
        yield conn


def resolve_app_id(conn: psycopg.Connection[Row], ref: str) -> uuid.UUID:
    """An app given by id or slug."""
    try:
        row = conn.execute(q("get_app"), {"app_id": uuid.UUID(ref)}).fetchone()
    except ValueError:
        row = conn.execute(q("get_app_by_slug"), {"slug": ref}).fetchone()
    if row is None:
        raise CommandError(f"no app {ref!r}")
    found: uuid.UUID = row["id"]
    return found


def emit(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
