"""Dead letters from the command line (list, retry, discard), and ``picloud dispatcher``."""

from __future__ import annotations

import argparse

from picloud.cli.common import CommandError, Sub, connect, emit, resolve_app_id
from picloud.queries import q


def _list(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        rows = conn.execute(
            q("list_dead_letters"), {"app_id": app_id, "source": args.source, "limit": args.limit}
        ).fetchall()
    emit({"dead_letters": rows})
    return 0


def _retry(args: argparse.Namespace) -> int:
    with connect() as conn:
        found = conn.execute(q("get_dead_letter_any_app"), {"id": args.id}).fetchone()
        if found is None:
            raise CommandError(f"no dead letter {args.id}")
        params = {"app_id": found["app_id"], "id": args.id, "force": False}
        row = conn.execute(q("retry_dead_letter"), params).fetchone()
    assert row is not None
    emit({"delivery_id": row["delivery_id"]})
    return 0


def _discard(args: argparse.Namespace) -> int:
    with connect() as conn:
        found = conn.execute(q("get_dead_letter_any_app"), {"id": args.id}).fetchone()
        if found is None:
            raise CommandError(f"no dead letter {args.id}")
        conn.execute(q("discard_dead_letter"), {"app_id": found["app_id"], "id": args.id})
    emit({"discarded": args.id})
    return 0


def register(sub: Sub) -> None:
    dl = sub.add_parser("dead-letters", help="list, retry and discard dead letters")
    dl_sub = dl.add_subparsers(dest="dead_letters_command", metavar="ACTION", required=True)
    lst = dl_sub.add_parser("list", help="an app's dead letters, newest first")
    lst.add_argument("app", help="app id or slug")
    lst.add_argument("--source", help="only dead letters of this source (kv, pubsub, ...)")
    lst.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    lst.set_defaults(func=_list)
    retry = dl_sub.add_parser("retry", help="re-enqueue a dead letter as a fresh delivery")
    retry.add_argument("id", type=int, help="dead letter id")
    retry.set_defaults(func=_retry)
    discard = dl_sub.add_parser("discard", help="delete a dead letter")
    discard.add_argument("id", type=int, help="dead letter id")
    discard.set_defaults(func=_discard)
