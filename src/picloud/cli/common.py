"""Helpers shared by the CLI commands: a checked database connection, app lookup, and
output (a table for people, ``--json`` for scripts)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import orjson
import psycopg
from psycopg.rows import dict_row

from picloud.db import Row, connect_options, database_url
from picloud.queries import q
from picloud.settings import Settings, load_settings
from picloud.startup import wait_for_database

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# Exit codes of every command (README "Commands").
OK, REFUSED, UNREACHABLE = 0, 1, 2


def add_output_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """--json and -v, before the command (``picloud --json apps list``) or after it."""
    parser.add_argument("--json", action="store_true", default=default, help="print JSON")
    parser.add_argument(
        "-v", "--verbose", action="count", default=default, help="log INFO (-vv: DEBUG)"
    )


# Options every leaf command takes; SUPPRESS keeps a value given before the command.
OUTPUT = argparse.ArgumentParser(add_help=False)
add_output_options(OUTPUT, argparse.SUPPRESS)

# Longest cell of a human table; JSON values are shown compact, cut to this.
CELL_MAX = 48


class CommandError(Exception):
    """A command refused in a way the user can fix; printed without a traceback (exit 1)."""


def leaf(sub: Sub, name: str, help: str, **kw: Any) -> argparse.ArgumentParser:
    """A sub-command that takes --json and -v."""
    return sub.add_parser(
        name, help=help, description=kw.pop("description", help), parents=[OUTPUT], **kw
    )


def group(sub: Sub, name: str, help: str) -> Sub:
    """A command with actions (``picloud apps list``)."""
    parser = sub.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=f"{name}_action", metavar="ACTION", required=True)


@contextlib.contextmanager
def database(settings: Settings | None = None) -> Iterator[str]:
    """The database URL, once the database answered (else DatabaseUnreachable, exit 2)."""
    settings = settings or load_settings()
    with database_url(settings) as url:
        wait_for_database(url, settings)
        yield url


@contextlib.contextmanager
def connect(settings: Settings | None = None) -> Iterator[psycopg.Connection[Row]]:
    """An autocommit connection to the configured (or embedded) database."""
    settings = settings or load_settings()
    with (
        database(settings) as url,
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


def parse_json(raw: str, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CommandError(f"{what} is not JSON: {exc}") from exc


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, (dict, list)):
        text = orjson.dumps(value).decode()
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 1] + "…"


def table(rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    """Rows as an aligned text table (header, then one line per row)."""
    if not rows:
        return "(none)"
    cols = list(columns or rows[0].keys())
    cells = [[_cell(row.get(c)) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def record(row: Row) -> str:
    """One object as ``key: value`` lines (JSON values in full)."""
    width = max((len(k) for k in row), default=0)
    out = []
    for key, value in row.items():
        text = orjson.dumps(value).decode() if isinstance(value, (dict, list)) else _cell(value)
        out.append(f"{key.ljust(width)}  {text}")
    return "\n".join(out)


def emit(
    args: argparse.Namespace,
    data: Any,
    columns: Sequence[str] | None = None,
    key: str | None = None,
) -> None:
    """Print a result: JSON with --json (a list as ``{key: [...]}``, the shape the HTTP API
    answers), else a table (a list) or key/value lines (a dict)."""
    if getattr(args, "json", False):
        shaped = {key: data} if key is not None and isinstance(data, list) else data
        text = orjson.dumps(shaped, option=orjson.OPT_INDENT_2, default=str).decode()
    elif isinstance(data, list):
        text = table(data, columns)
    elif isinstance(data, dict):
        text = record(data)
    else:
        text = str(data)
    sys.stdout.write(text + "\n")
