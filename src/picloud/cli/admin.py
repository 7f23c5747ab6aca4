"""Apps, their host names and their API keys from the command line."""

from __future__ import annotations

import argparse
import uuid

from picloud.cli.common import CommandError, Sub, connect, emit, group, leaf, resolve_app_id
from picloud.queries import q

APP_COLUMNS = ("id", "slug", "name", "created_at")
KEY_COLUMNS = ("id", "name", "key_prefix", "capabilities", "created_at", "revoked_at")


def _apps_create(args: argparse.Namespace) -> int:
    with connect() as conn:
        row = conn.execute(q("create_app"), {"slug": args.slug, "name": args.name}).fetchone()
    emit(args, row)
    return 0


def _apps_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        emit(args, conn.execute(q("list_apps")).fetchall(), APP_COLUMNS, "apps")
    return 0


def _apps_delete(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        conn.execute(q("delete_app"), {"app_id": app_id})
    emit(args, {"deleted": app_id})
    return 0


def _host(raw: str) -> str:
    """The rule of POST …/domains: a bare host name, lower case, no trailing dot."""
    host = raw.strip().lower().rstrip(".")
    if not host or ":" in host or "/" in host:
        raise CommandError("the host must be a host name without port or path")
    return host


def _domains_add(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        row = conn.execute(q("add_domain"), {"app_id": app_id, "host": _host(args.host)}).fetchone()
    emit(args, row)
    return 0


def _domains_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        emit(args, conn.execute(q("list_domains"), {"app_id": app_id}).fetchall(), key="domains")
    return 0


def _domains_remove(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        params = {"app_id": app_id, "host": args.host.lower()}
        if conn.execute(q("remove_domain"), params).fetchone() is None:
            raise CommandError(f"{args.host!r} is not a host name of {args.app!r}")
    emit(args, {"removed": args.host.lower()})
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
    emit(args, {"id": row["id"], "key": row["key"], "app_id": app_id, "capabilities": sorted(caps)})
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        emit(
            args,
            conn.execute(q("list_api_keys"), {"app_id": app_id}).fetchall(),
            KEY_COLUMNS,
            "keys",
        )
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    try:
        key_id = uuid.UUID(args.key_id)
    except ValueError as exc:
        raise CommandError(f"{args.key_id!r} is not a key id") from exc
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        row = conn.execute(q("revoke_api_key"), {"app_id": app_id, "key_id": key_id}).fetchone()
    if row is None:
        raise CommandError(f"no key {args.key_id} in app {args.app!r}")
    emit(args, row)
    return 0


def register(sub: Sub) -> None:
    apps = group(sub, "apps", "create, list and delete apps")
    create = leaf(apps, "create", "create an app")
    create.add_argument("--slug", required=True, help="URL-safe id: a-z, 0-9, '-' (<slug>.<base>)")
    create.add_argument("--name", required=True, help="display name")
    create.set_defaults(func=_apps_create)
    leaf(apps, "list", "list apps").set_defaults(func=_apps_list)
    delete = leaf(apps, "delete", "delete an app and everything it owns")
    delete.add_argument("app", help="app id or slug")
    delete.set_defaults(func=_apps_delete)

    domains = group(sub, "domains", "attach host names to apps")
    add = leaf(domains, "add", "attach a host name to an app")
    add.add_argument("app", help="app id or slug")
    add.add_argument("host", help="host name, e.g. myapp.example.com")
    add.set_defaults(func=_domains_add)
    dlist = leaf(domains, "list", "an app's host names")
    dlist.add_argument("app", help="app id or slug")
    dlist.set_defaults(func=_domains_list)
    remove = leaf(domains, "remove", "detach a host name from an app")
    remove.add_argument("app", help="app id or slug")
    remove.add_argument("host", help="host name")
    remove.set_defaults(func=_domains_remove)

    keys = group(sub, "keys", "create, list and revoke API keys")
    kc = leaf(keys, "create", "create an API key; the key is printed once")
    kc.add_argument("--app", help="app id or slug the key is bound to")
    kc.add_argument("--capability", "-c", action="append", help="a capability (repeat for several)")
    kc.add_argument(
        "--instance", action="store_true", help="an instance-level key with instance:admin"
    )
    kc.add_argument("--name", default="cli", help="a label for the key")
    kc.set_defaults(func=_keys_create)
    klist = leaf(keys, "list", "an app's keys (never the secrets)")
    klist.add_argument("app", help="app id or slug")
    klist.set_defaults(func=_keys_list)
    revoke = leaf(keys, "revoke", "revoke a key of an app")
    revoke.add_argument("app", help="app id or slug")
    revoke.add_argument("key_id", help="the key's id (keys list)")
    revoke.set_defaults(func=_keys_revoke)
