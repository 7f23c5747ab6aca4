"""``picloud serve`` and ``picloud migrate``."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from picloud.bootstrap import ensure_admin
from picloud.cli.common import Sub
from picloud.db import database_url
from picloud.migrate import migrate
from picloud.settings import ROLES, load_settings, parse_roles
from picloud.startup import wait_for_database

log = logging.getLogger("picloud")


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.no_migrate:
        settings = settings.with_(migrate_on_start=False)
    if args.roles is not None:
        settings = settings.with_(roles=parse_roles(args.roles))
    from picloud.web.app import create_app

    with database_url(settings) as url:
        wait_for_database(url, settings)
        if not settings.database_url:
            print(
                f"PiCloud: embedded PostgreSQL, data in {(settings.data_dir / 'pg').resolve()}",
                flush=True,
            )
        if settings.migrate_on_start:
            migrate(url)
        boot = ensure_admin(url, settings)
        if boot.created_key:
            print(
                f"PiCloud: created an instance admin key (shown once, also saved to "
                f"{boot.key_file}):\n  {boot.created_key}",
                flush=True,
            )
        app = create_app(settings, url)
        print(
            f"PiCloud listening on http://{settings.listen_host}:{settings.listen_port}",
            flush=True,
        )
        web.run_app(
            app,
            host=settings.listen_host,
            port=settings.listen_port,
            handler_cancellation=True,
            print=None,
            access_log=None,
        )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    with database_url(settings) as url:
        wait_for_database(url, settings)
        result = migrate(url)
    applied = ", ".join(map(str, result.applied)) or "none (up to date)"
    print(f"migrations applied: {applied}; sql files applied: {len(result.sql_files)}")
    return 0


def _schema_snapshot(args: argparse.Namespace) -> int:
    import psycopg

    from picloud.schema_snapshot import schema_snapshot

    settings = load_settings()
    with database_url(settings) as url:
        wait_for_database(url, settings)
        with psycopg.connect(url) as conn:
            print(schema_snapshot(conn), end="")
    return 0


def register(sub: Sub) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the HTTP server and the background roles",
        description="Migrate (unless --no-migrate) and serve the HTTP API, realtime SSE and "
        "the dashboard on PICLOUD_LISTEN, running the background roles in PICLOUD_ROLES.",
    )
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate at start-up")
    serve.add_argument(
        "--roles",
        help=f"comma-separated roles to run here ({', '.join(ROLES)}), or none; "
        "overrides PICLOUD_ROLES",
    )
    serve.set_defaults(func=_serve)
    mig = sub.add_parser(
        "migrate", help="apply pending migrations and re-apply the SQL functions (idempotent)"
    )
    mig.set_defaults(func=_migrate)
    snap = sub.add_parser(
        "schema-snapshot",
        help="print a normalised description of schema picloud (tests/schema_snapshot.txt)",
    )
    snap.set_defaults(func=_schema_snapshot)
