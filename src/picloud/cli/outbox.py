"""Handlers, triggers and cron jobs from the command line (what runs when a source changes)."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from picloud.cli.common import CommandError, Sub, connect, emit, group, leaf, parse_json
from picloud.cli.common import resolve_app_id as app_of
from picloud.cron.expressions import CronError, next_after, parse_expression, parse_timezone
from picloud.queries import q

HANDLER_COLUMNS = ("id", "name", "kind", "url", "function", "topic", "timeout_ms")
TRIGGER_COLUMNS = ("id", "name", "source", "filter", "handler_id", "max_attempts", "enabled")
CRON_COLUMNS = ("name", "expression", "timezone", "enabled", "next_run_at", "last_error")


def _uuid(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise CommandError(f"{raw!r} is not a {what} id") from exc


def _handlers_create(args: argparse.Namespace) -> int:
    if args.kind == "webhook" and (args.url is None or args.function is not None):
        raise CommandError("a webhook handler takes --url (and --secret), not --function")
    if args.kind == "sql" and (args.function is None or args.url or args.secret):
        raise CommandError("an sql handler takes --function schema.name, not --url or --secret")
    if args.kind == "topic" and (args.topic is None or args.url or args.secret or args.function):
        raise CommandError("a topic handler takes --topic NAME only")
    if args.kind != "topic" and args.topic is not None:
        raise CommandError("--topic is for handlers of kind topic")
    with connect() as conn:
        params = {
            "app_id": app_of(conn, args.app),
            "name": args.name,
            "kind": args.kind,
            "url": args.url,
            "secret": args.secret,
            "function": args.function,
            "topic": args.topic,
            "timeout_ms": args.timeout_ms,
        }
        row = conn.execute(q("create_handler"), params).fetchone()
    emit(args, row)
    return 0


def _handlers_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        rows = conn.execute(q("list_handlers"), {"app_id": app_of(conn, args.app)}).fetchall()
    emit(args, rows, HANDLER_COLUMNS, "handlers")
    return 0


def _handlers_delete(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {"app_id": app_of(conn, args.app), "id": _uuid(args.id, "handler")}
        try:
            conn.execute(q("delete_handler"), params)
        except psycopg.errors.ForeignKeyViolation as exc:
            raise CommandError("triggers still use this handler") from exc
        except psycopg.errors.NoDataFound as exc:
            raise CommandError(f"no handler {args.id}") from exc
    emit(args, {"deleted": args.id})
    return 0


def _triggers_create(args: argparse.Namespace) -> int:
    filter_ = parse_json(args.filter, "--filter") if args.filter else {}
    if not isinstance(filter_, dict):
        raise CommandError('--filter must be an object like {"match": "orders.*"}')
    with connect() as conn:
        params = {
            "app_id": app_of(conn, args.app),
            "name": args.name,
            "source": args.source,
            "filter": Jsonb(filter_),
            "handler_id": _uuid(args.handler, "handler"),
            "max_attempts": args.max_attempts,
            "enabled": not args.disabled,
        }
        row = conn.execute(q("create_trigger"), params).fetchone()
    emit(args, row)
    return 0


def _handlers_update(args: argparse.Namespace) -> int:
    changes = (args.name, args.url, args.secret, args.function, args.topic, args.timeout_ms)
    if all(v is None for v in changes):
        raise CommandError(
            "give at least one of --name, --url, --secret, --function, --topic, --timeout-ms"
        )
    with connect() as conn:
        params = {
            "app_id": app_of(conn, args.app),
            "id": _uuid(args.id, "handler"),
            "name": args.name,
            "url": args.url,
            "secret": args.secret,
            "function": args.function,
            "topic": args.topic,
            "timeout_ms": args.timeout_ms,
        }
        try:
            row = conn.execute(q("update_handler"), params).fetchone()
        except psycopg.errors.NoDataFound as exc:
            raise CommandError(f"no handler {args.id}") from exc
    emit(args, row)
    return 0


def _triggers_update(args: argparse.Namespace) -> int:
    filter_ = parse_json(args.filter, "--filter") if args.filter else None
    if filter_ is not None and not isinstance(filter_, dict):
        raise CommandError('--filter must be an object like {"match": "orders.*"}')
    changes = (args.name, filter_, args.handler, args.max_attempts, args.enabled)
    if all(v is None for v in changes):
        raise CommandError(
            "give at least one of --name, --filter, --handler, --max-attempts, --enable, --disable"
        )
    with connect() as conn:
        params = {
            "app_id": app_of(conn, args.app),
            "id": _uuid(args.id, "trigger"),
            "name": args.name,
            "filter": Jsonb(filter_) if filter_ is not None else None,
            "handler_id": _uuid(args.handler, "handler") if args.handler else None,
            "max_attempts": args.max_attempts,
            "enabled": args.enabled,
        }
        try:
            row = conn.execute(q("update_trigger"), params).fetchone()
        except psycopg.errors.NoDataFound as exc:
            raise CommandError(f"no trigger {args.id}") from exc
    emit(args, row)
    return 0


def _triggers_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        rows = conn.execute(q("list_triggers"), {"app_id": app_of(conn, args.app)}).fetchall()
    emit(args, rows, TRIGGER_COLUMNS, "triggers")
    return 0


def _triggers_delete(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {"app_id": app_of(conn, args.app), "id": _uuid(args.id, "trigger")}
        try:
            conn.execute(q("delete_trigger"), params)
        except psycopg.errors.NoDataFound as exc:
            raise CommandError(f"no trigger {args.id}") from exc
    emit(args, {"deleted": args.id})
    return 0


def _cron_put(args: argparse.Namespace) -> int:
    payload = parse_json(args.payload, "--payload") if args.payload else {}
    if not isinstance(payload, dict):
        raise CommandError("--payload must be a JSON object")
    try:
        parse_timezone(args.timezone)
        expression = parse_expression(args.expression, args.timezone)
        next_run_at = next_after(expression, args.timezone, datetime.now(UTC))
    except CronError as exc:
        raise CommandError(f"{exc.field}: {exc.message}") from exc
    with connect() as conn:
        params = {
            "app_id": app_of(conn, args.app),
            "name": args.name,
            "expression": expression,
            "timezone": args.timezone,
            "payload": Jsonb(payload),
            "enabled": not args.disabled,
            "next_run_at": next_run_at,
        }
        # Create or replace in one statement when the job exists (the usual case of a
        # re-run script); a create that loses a race with another one replaces it.
        try:
            row = conn.execute(q("cron_update"), params).fetchone()
        except psycopg.errors.NoDataFound:
            try:
                row = conn.execute(q("cron_create"), params).fetchone()
            except psycopg.errors.UniqueViolation:
                row = conn.execute(q("cron_update"), params).fetchone()
    emit(args, row)
    return 0


def _cron_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        rows = conn.execute(q("cron_list"), {"app_id": app_of(conn, args.app)}).fetchall()
    emit(args, rows, CRON_COLUMNS, "cron_jobs")
    return 0


def _cron_delete(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {"app_id": app_of(conn, args.app), "name": args.name}
        try:
            conn.execute(q("cron_delete"), params)
        except psycopg.errors.NoDataFound as exc:
            raise CommandError(f"no cron job {args.name!r}") from exc
    emit(args, {"deleted": args.name})
    return 0


def register(sub: Sub) -> None:
    handlers = group(sub, "handlers", "what triggers run: webhooks, SQL functions or topics")
    hc = leaf(handlers, "create", "register a handler")
    hc.add_argument("app", help="app id or slug")
    hc.add_argument("name", help="handler name")
    hc.add_argument("--kind", choices=("webhook", "sql", "topic"), default="webhook")
    hc.add_argument("--url", help="webhook: the URL to POST to")
    hc.add_argument("--secret", help="webhook: signing secret (default: generated)")
    hc.add_argument("--function", help="sql: schema.name(event jsonb)")
    hc.add_argument("--topic", help="topic: publish each event to this topic (live collections)")
    hc.add_argument("--timeout-ms", type=int, help="default 10000")
    hc.set_defaults(func=_handlers_create)
    hl = leaf(handlers, "list", "an app's handlers (never the secrets)")
    hl.add_argument("app", help="app id or slug")
    hl.set_defaults(func=_handlers_list)
    hu = leaf(handlers, "update", "change a handler")
    hu.add_argument("app", help="app id or slug")
    hu.add_argument("id", help="handler id")
    hu.add_argument("--name")
    hu.add_argument("--url", help="webhook: the URL to POST to")
    hu.add_argument("--secret", help="webhook: a new signing secret")
    hu.add_argument("--function", help="sql: schema.name(event jsonb)")
    hu.add_argument("--topic", help="topic: the topic to publish to")
    hu.add_argument("--timeout-ms", type=int)
    hu.set_defaults(func=_handlers_update)
    hd = leaf(handlers, "delete", "delete a handler no trigger uses")
    hd.add_argument("app", help="app id or slug")
    hd.add_argument("id", help="handler id")
    hd.set_defaults(func=_handlers_delete)

    triggers = group(sub, "triggers", "run a handler when a source changes")
    tc = leaf(triggers, "create", "create a trigger")
    tc.add_argument("app", help="app id or slug")
    tc.add_argument("name", help="trigger name")
    tc.add_argument("--source", required=True, help="GET /api/v1/trigger-sources lists them")
    tc.add_argument("--handler", required=True, help="handler id")
    tc.add_argument("--filter", help='JSON, e.g. {"match": "orders.*", "types": ["set"]}')
    tc.add_argument("--max-attempts", type=int, help="default 5")
    tc.add_argument("--disabled", action="store_true", help="create it disabled")
    tc.set_defaults(func=_triggers_create)
    tl = leaf(triggers, "list", "an app's triggers")
    tl.add_argument("app", help="app id or slug")
    tl.set_defaults(func=_triggers_list)
    tu = leaf(triggers, "update", "change a trigger (e.g. --disable it)")
    tu.add_argument("app", help="app id or slug")
    tu.add_argument("id", help="trigger id")
    tu.add_argument("--name")
    tu.add_argument("--filter", help="JSON object, replaces the filter")
    tu.add_argument("--handler", help="handler id")
    tu.add_argument("--max-attempts", type=int)
    onoff = tu.add_mutually_exclusive_group()
    onoff.add_argument("--enable", dest="enabled", action="store_true", default=None)
    onoff.add_argument("--disable", dest="enabled", action="store_false")
    tu.set_defaults(func=_triggers_update)
    td = leaf(triggers, "delete", "delete a trigger")
    td.add_argument("app", help="app id or slug")
    td.add_argument("id", help="trigger id")
    td.set_defaults(func=_triggers_delete)

    cron = group(sub, "cron", "an app's cron jobs")
    cp = leaf(cron, "put", "create or replace a cron job")
    cp.add_argument("app", help="app id or slug")
    cp.add_argument("name", help="job name")
    cp.add_argument("expression", help="five fields: 'm h dom mon dow'")
    cp.add_argument("--timezone", default="UTC", help="IANA time zone (default UTC)")
    cp.add_argument("--payload", help="a JSON object sent with each event")
    cp.add_argument("--disabled", action="store_true")
    cp.set_defaults(func=_cron_put)
    cl = leaf(cron, "list", "an app's cron jobs")
    cl.add_argument("app", help="app id or slug")
    cl.set_defaults(func=_cron_list)
    cd = leaf(cron, "delete", "delete a cron job")
    cd.add_argument("app", help="app id or slug")
    cd.add_argument("name", help="job name")
    cd.set_defaults(func=_cron_delete)
