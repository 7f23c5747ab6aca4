"""The ``picloud`` command: serve, migrate and every admin task.

Each sub-module contributes its sub-commands through ``register(subparsers)``. Exit codes:
0 ok, 1 refused (bad input, as the SQL functions say), 2 the database cannot be reached
(or a setting is unusable).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

import psycopg

from picloud import VERSIONS, logs
from picloud.cli import admin, data, dbtools, deliveries, dispatcher, outbox, serve, tokens
from picloud.cli.common import REFUSED, UNREACHABLE, CommandError, Sub, add_output_options
from picloud.settings import SettingsError, load_settings
from picloud.startup import DatabaseUnreachable

REGISTRARS: list[Callable[[Sub], None]] = [
    serve.register,
    admin.register,
    tokens.register,
    data.register,
    outbox.register,
    deliveries.register,
    dbtools.register,
    dispatcher.register,
]
# Long-running commands log at INFO; admin commands print their result and only warnings.
SERVERS = ("serve", "dispatcher")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="picloud",
        description="PiCloud: a Postgres-native realtime backend. Settings come from the "
        "environment (DATABASE_URL, PICLOUD_*); without DATABASE_URL an embedded PostgreSQL "
        "under PICLOUD_DATA_DIR is used. Exit codes: 0 ok, 1 refused, 2 database unreachable.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=" ".join(f"{k} {v}" for k, v in VERSIONS.items()),
        help="print the server, SDK, dashboard and client versions",
    )
    parser.add_argument(
        "--log-level", help="logging level (default INFO for serve/dispatcher, else WARNING)"
    )
    add_output_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in REGISTRARS:
        register(sub)
    return parser


def _level(args: argparse.Namespace) -> int:
    if args.log_level:
        level = logging.getLevelName(str(args.log_level).upper())
        return level if isinstance(level, int) else logging.INFO
    verbose = args.verbose or 0
    if verbose:
        return logging.DEBUG if verbose > 1 else logging.INFO
    return logging.INFO if args.command in SERVERS else logging.WARNING


def _refusal(exc: psycopg.Error) -> str | None:
    """What a SQL refusal of bad input says; None for other database errors."""
    diag = exc.diag
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return f"already exists ({diag.constraint_name or 'unique'})"
    if isinstance(exc, psycopg.errors.CheckViolation):
        return f"invalid value ({diag.constraint_name or 'check'})"
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        return f"unknown reference ({diag.constraint_name})"
    if isinstance(
        exc,
        psycopg.DataError
        | psycopg.errors.NotNullViolation
        | psycopg.errors.NoDataFound
        | psycopg.errors.ProgramLimitExceeded
        | psycopg.errors.RaiseException,
    ) or (exc.sqlstate or "").startswith("PC"):
        return diag.message_primary or str(exc)
    return None


def _command_index(argv: list[str]) -> int | None:
    """Where the command name is in ``argv`` (after the global options)."""
    i = 0
    while i < len(argv):
        if argv[i] == "--log-level":
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return i
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `picloud psql` is psql's (picloud psql -c 'select 1').
    command = _command_index(argv)
    psql_args: list[str] = []
    if command is not None and argv[command] == "psql":
        argv, psql_args = argv[: command + 1], argv[command + 1 :]
    args = parser.parse_args(argv)
    args.psql_args = psql_args
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"picloud: bad setting: {exc}", file=sys.stderr)
        return UNREACHABLE
    logs.configure(_level(args), settings.log_format)
    try:
        result: int = args.func(args)
    except DatabaseUnreachable as exc:
        print(f"picloud: {exc}", file=sys.stderr)
        return UNREACHABLE
    except CommandError as exc:
        print(f"picloud: {exc}", file=sys.stderr)
        return REFUSED
    except psycopg.Error as exc:
        # Refusals first: psycopg files some (54000, too large) under OperationalError.
        message = _refusal(exc)
        if message is not None:
            print(f"picloud: {message}", file=sys.stderr)
            return REFUSED
        if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction):
            print(
                f"picloud: the database lacks PiCloud's schema (run `picloud migrate`): "
                f"{exc.diag.message_primary}",
                file=sys.stderr,
            )
            return UNREACHABLE
        if not isinstance(exc, psycopg.OperationalError):
            raise
        lost = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"picloud: lost the database: {lost}", file=sys.stderr)
        return UNREACHABLE
    return result


if __name__ == "__main__":
    raise SystemExit(main())
