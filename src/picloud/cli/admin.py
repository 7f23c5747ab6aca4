"""Everyday admin commands: apps, domains, API keys."""

from __future__ import annotations

import argparse

import psycopg

from picloud.cli.common import CommandError, Sub, connect, emit, resolve_app_id
from picloud.queries import q


def _apps_create(args: argparse.Namespace) -> int:
    with connect() as conn:
        try:
            row = conn.execute(q("create_app"), {"slug": args.slug, "name": args.name}).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise CommandError(f"an app with slug {args.slug!r} exists already") from exc
        except psycopg.errors.CheckViolation as exc:
            raise CommandError(
                "slug: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'; "
                "name: 1-200 characters"
            ) from exc
    emit(row)
    return 0


def _apps_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        emit(conn.execute(q("list_apps")).fetchall())
    return 0


def _domains_add(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        try:
            row = conn.execute(
                q("add_domain"), {"app_id": app_id, "host": args.host.lower().rstrip(".")}
            ).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise CommandError(f"host {args.host!r} belongs to an app already") from exc
        except psycopg.errors.CheckViolation as exc:
            raise CommandError(f"{args.host!r} is not a host name") from exc
    emit(row)
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    with connect() as conn:
        if args.instance:
            app_id, caps = None, ["instance:admin"]
        else:
            if not args.app or not args.capability:
                raise CommandError("give --app and at least one --capability (or --instance)")
            app_id, caps = resolve_app_id(conn, args.app), args.capability
        row = conn.execute(
            q("create_api_key"),
            {"app_id": app_id, "name": args.name, "capabilities": caps, "expires_at": None},
        ).fetchone()
    assert row is not None
    emit({"id": row["id"], "key": row["key"], "app_id": app_id, "capabilities": sorted(caps)})
    return 0


def register(sub: Sub) -> None:
    apps = sub.add_parser("apps", help="create and list apps")
    apps_sub = apps.add_subparsers(dest="apps_command", metavar="ACTION", required=True)
    create = apps_sub.add_parser("create", help="create an app")
    create.add_argument("--slug", required=True, help="URL-safe id: a-z, 0-9, '-' (<slug>.<base>)")
    create.add_argument("--name", required=True, help="display name")
    create.set_defaults(func=_apps_create)
    apps_sub.add_parser("list", help="list apps").set_defaults(func=_apps_list)

    domains = sub.add_parser("domains", help="attach host names to apps")
    domains_sub = domains.add_subparsers(dest="domains_command", metavar="ACTION", required=True)
    add = domains_sub.add_parser("add", help="attach a host name to an app")
    add.add_argument("app", help="app id or slug")
    add.add_argument("host", help="host name, e.g. myapp.example.com")
    add.set_defaults(func=_domains_add)

    keys = sub.add_parser("keys", help="create API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kc = keys_sub.add_parser("create", help="create an API key; the key is printed once")
    kc.add_argument("--app", help="app id or slug the key is bound to")
    kc.add_argument("--capability", "-c", action="append", help="a capability (repeat for several)")
    kc.add_argument(
        "--instance", action="store_true", help="an instance-level key with instance:admin"
    )
    kc.add_argument("--name", default="cli", help="a label for the key")
    kc.set_defaults(func=_keys_create)
