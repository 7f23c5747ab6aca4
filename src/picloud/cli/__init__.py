"""The ``picloud`` command: serve, migrate and the everyday admin tasks.

Each sub-module contributes its sub-commands through ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

import psycopg

from picloud import VERSIONS
from picloud.cli import admin, deliveries, serve, tokens
from picloud.cli.common import CommandError, Sub
from picloud.dispatcher import cli as dispatcher_cli
from picloud.settings import SettingsError

REGISTRARS: list[Callable[[Sub], None]] = [
    serve.register,
    admin.register,
    deliveries.register,
    tokens.register,
    dispatcher_cli.register,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="picloud",
        description="PiCloud: a Postgres-native realtime backend. Settings come from the "
        "environment (DATABASE_URL, PICLOUD_*); without DATABASE_URL an embedded PostgreSQL "
        "under PICLOUD_DATA_DIR is used.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=" ".join(f"{k} {v}" for k, v in VERSIONS.items()),
        help="print the server, SDK, dashboard and client versions",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    logging.getLogger("pgmigrate").setLevel(logging.WARNING)
    try:
        result: int = args.func(args)
    except SettingsError as exc:
        print(f"picloud: bad setting: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"picloud: {exc}", file=sys.stderr)
        return 1
    except (psycopg.DataError, psycopg.errors.ProgramLimitExceeded) as exc:
        # Bad input refused by a SQL function: its message says what is wrong.
        print(f"picloud: {exc.diag.message_primary or exc}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    raise SystemExit(main())
