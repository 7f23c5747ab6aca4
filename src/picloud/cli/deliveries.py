"""Deliveries (list, show) and dead letters (list, show, retry one or in bulk, discard)."""

from __future__ import annotations

import argparse
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from picloud.cli.common import CommandError, Sub, connect, emit, group, leaf, resolve_app_id
from picloud.db import Row
from picloud.queries import q
from picloud.redrive import ALREADY_RETRIED, already_retried

# Sources and statuses are SQL's (picloud.event_sources(), delivery_statuses()): an unknown
# one is refused by the statement, with the list.
DELIVERY_COLUMNS = ("id", "status", "source", "subject", "attempts", "run_at", "last_error")
DEAD_LETTER_COLUMNS = (
    "id",
    "source",
    "subject",
    "attempts",
    "last_error",
    "created_at",
    "retry_delivery_id",
)
BATCH = 1000
_DURATION = re.compile(r"^([0-9]+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _when(raw: str | None, name: str) -> datetime | None:
    """``1h`` / ``30m`` / ``2d`` ago, or an ISO 8601 time (UTC when it names no zone)."""
    if raw is None:
        return None
    match = _DURATION.match(raw.strip())
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError as exc:
        raise CommandError(f"--{name} {raw!r}: give a duration (30m, 1h, 2d) or a time") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _app_of_dead_letter(conn: psycopg.Connection[Row], dead_letter_id: int) -> Any:
    found = conn.execute(q("get_dead_letter_any_app"), {"id": dead_letter_id}).fetchone()
    if found is None:
        raise CommandError(f"no dead letter {dead_letter_id}")
    return found["app_id"]


def _deliveries_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {
            "app_id": resolve_app_id(conn, args.app),
            "status": args.status,
            "source": args.source,
            "limit": args.limit,
        }
        rows = conn.execute(q("list_deliveries"), params).fetchall()
    emit(args, rows, DELIVERY_COLUMNS, "deliveries")
    return 0


def _deliveries_show(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {"app_id": resolve_app_id(conn, args.app), "id": args.id}
        row = conn.execute(q("get_delivery"), params).fetchone()
        if row is None:
            raise CommandError(f"no delivery {args.id} in app {args.app!r}")
        row["attempts_made"] = row.pop("attempts")
        row["attempts"] = conn.execute(q("list_delivery_attempts"), params).fetchall()
    emit(args, row)
    return 0


def _list(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        rows = conn.execute(
            q("list_dead_letters"), {"app_id": app_id, "source": args.source, "limit": args.limit}
        ).fetchall()
    emit(args, rows, DEAD_LETTER_COLUMNS, "dead_letters")
    return 0


def _show(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {"app_id": _app_of_dead_letter(conn, args.id), "id": args.id}
        row = conn.execute(q("get_dead_letter"), params).fetchone()
    emit(args, row)
    return 0


def _retry_one(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {"app_id": _app_of_dead_letter(conn, args.id), "id": args.id, "force": args.force}
        try:
            row = conn.execute(q("retry_dead_letter"), params).fetchone()
        except psycopg.Error as exc:
            if exc.sqlstate != ALREADY_RETRIED:
                raise
            refusal = already_retried(exc)
            if args.json:
                emit(args, {"error": refusal})
            raise CommandError(refusal["message"]) from exc
    assert row is not None
    emit(args, {"dead_letter_id": args.id, "delivery_id": row["delivery_id"]})
    return 0


def _retry_bulk(args: argparse.Namespace) -> int:
    handler_id = None
    if args.handler is not None:
        try:
            handler_id = uuid.UUID(args.handler)
        except ValueError as exc:
            raise CommandError(f"--handler {args.handler!r} is not a handler id") from exc
    with connect() as conn:
        params: dict[str, Any] = {
            "app_id": resolve_app_id(conn, args.app),
            "source": args.source,
            "since": _when(args.since, "since"),
            "until": _when(args.until, "until"),
            "handler_id": handler_id,
        }
        # Fix the end of the set now, so dead letters that arrive meanwhile wait for next time.
        counted = conn.execute(q("count_dead_letters_to_retry"), params).fetchone()
        assert counted is not None
        params["until"] = counted["until"]
        total = counted["matching"] if args.limit is None else min(args.limit, counted["matching"])
        console = Console(stderr=True)
        progress = Progress(
            TextColumn("retrying dead letters"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=args.json or not console.is_terminal,
        )
        done = 0
        with progress:
            task = progress.add_task("retry", total=total)
            # Batches of their own transactions: no long transaction, no statement timeout.
            while done < total:
                params["limit"] = min(args.batch, total - done)
                row = conn.execute(q("retry_dead_letters_batch"), params).fetchone()
                assert row is not None
                if row["retried"] == 0:
                    break
                done += row["retried"]
                progress.update(task, completed=done)
    emit(args, {"retried": done, "matching": counted["matching"]})
    return 0


def _retry(args: argparse.Namespace) -> int:
    bulk = [args.app, args.source, args.since, args.until, args.handler, args.limit]
    if args.id is not None:
        if any(v is not None for v in bulk):
            raise CommandError("give a dead letter id, or --app with a filter, not both")
        return _retry_one(args)
    if args.app is None:
        raise CommandError("give a dead letter id, or --app (and a filter) to retry in bulk")
    if args.force:
        raise CommandError("--force is for one dead letter; a bulk retry skips retried ones")
    return _retry_bulk(args)


def _discard(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {"app_id": _app_of_dead_letter(conn, args.id), "id": args.id}
        try:
            conn.execute(q("discard_dead_letter"), params)
        except psycopg.errors.NoDataFound as exc:  # discarded meanwhile
            raise CommandError(f"no dead letter {args.id}") from exc
    emit(args, {"discarded": args.id})
    return 0


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw} is not a positive integer")
    return value


def register(sub: Sub) -> None:
    dv = group(sub, "deliveries", "inspect the outbox")
    dlst = leaf(dv, "list", "an app's deliveries, newest first")
    dlst.add_argument("app", help="app id or slug")
    dlst.add_argument("--status", help="pending, running, done or dead")
    dlst.add_argument("--source", help="only deliveries of this source")
    dlst.add_argument("--limit", type=_positive, default=100, help="at most this many")
    dlst.set_defaults(func=_deliveries_list)
    dshow = leaf(dv, "show", "one delivery with its attempts")
    dshow.add_argument("app", help="app id or slug")
    dshow.add_argument("id", type=int, help="delivery id")
    dshow.set_defaults(func=_deliveries_show)

    dl = group(sub, "dead-letters", "list, show, retry and discard dead letters")
    lst = leaf(dl, "list", "an app's dead letters, newest first")
    lst.add_argument("app", help="app id or slug")
    lst.add_argument("--source", help="only dead letters of this source")
    lst.add_argument("--limit", type=_positive, default=100, help="at most this many")
    lst.set_defaults(func=_list)
    show = leaf(dl, "show", "one dead letter")
    show.add_argument("id", type=int, help="dead letter id")
    show.set_defaults(func=_show)
    retry = leaf(
        dl,
        "retry",
        "retry one dead letter (ID), or in bulk every one of --app not retried yet that "
        "matches the filter (with a progress bar on a terminal)",
    )
    retry.add_argument("id", type=int, nargs="?", help="dead letter id")
    retry.add_argument("--force", action="store_true", help="retry ID even if retried already")
    retry.add_argument("--app", help="bulk: app id or slug")
    retry.add_argument("--source", help="bulk: only this source")
    retry.add_argument("--since", help="bulk: created since (1h, 30m, 2d or an ISO time)")
    retry.add_argument("--until", help="bulk: created before (default: now)")
    retry.add_argument("--handler", help="bulk: only dead letters of this handler id")
    retry.add_argument("--limit", type=_positive, help="bulk: at most this many")
    retry.add_argument(
        "--batch", type=_positive, default=BATCH, help=f"bulk: per transaction (default {BATCH})"
    )
    retry.set_defaults(func=_retry)
    discard = leaf(dl, "discard", "delete a dead letter")
    discard.add_argument("id", type=int, help="dead letter id")
    discard.set_defaults(func=_discard)
