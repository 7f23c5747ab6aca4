"""Realtime admin commands: topics, publishing, subscriber tokens and key rotation."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import orjson

from picloud.cli.common import (
    CommandError,
    Sub,
    connect,
    emit,
    group,
    leaf,
    parse_json,
    resolve_app_id,
)
from picloud.queries import q

TOPIC_COLUMNS = (
    "name",
    "external_subscribable",
    "auth_mode",
    "presence",
    "created_at",
    "updated_at",
)


def _tokens_mint(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        params = {"app_id": app_id, "topic": args.topic, "ttl_seconds": args.ttl}
        row = conn.execute(q("mint_subscriber_token"), params).fetchone()
    assert row is not None
    emit(args, {"token": row["token"], "expires_at": row["expires_at"]})
    return 0


def _tokens_rotate(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        row = conn.execute(
            q("rotate_app_secret"), {"app_id": app_id, "grace_seconds": args.grace}
        ).fetchone()
    assert row is not None
    emit(args, {"app_id": app_id, "key_version": row["key_version"], "grace_seconds": args.grace})
    return 0


def _topics_create(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        params = {
            "app_id": app_id,
            "name": args.name,
            "external_subscribable": args.external,
            "auth_mode": args.auth_mode,
            "presence": args.presence,
        }
        row = conn.execute(q("create_topic"), params).fetchone()
    emit(args, row)
    return 0


def _topics_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        emit(
            args,
            conn.execute(q("list_topics"), {"app_id": app_id}).fetchall(),
            TOPIC_COLUMNS,
            "topics",
        )
    return 0


def _topics_update(args: argparse.Namespace) -> int:
    if args.external is None and args.auth_mode is None and args.presence is None:
        raise CommandError("give --external, --internal, --auth-mode and/or --[no-]presence")
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        params = {
            "app_id": app_id,
            "name": args.name,
            "external_subscribable": args.external,
            "auth_mode": args.auth_mode,
            "presence": args.presence,
        }
        row = conn.execute(q("update_topic"), params).fetchone()
    if row is None:
        raise CommandError(f"no topic {args.name!r} in app {args.app!r}")
    emit(args, row)
    return 0


def _topics_delete(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        if (
            conn.execute(q("delete_topic"), {"app_id": app_id, "name": args.name}).fetchone()
            is None
        ):
            raise CommandError(f"no topic {args.name!r} in app {args.app!r}")
    emit(args, {"deleted": args.name})
    return 0


def _messages(args: argparse.Namespace) -> list[str]:
    """The messages to publish, as JSON text: the argument, or one per line of --file."""
    if (args.message is None) == (args.file is None):
        raise CommandError("give a message, or --file FILE (- for stdin) with one per line")
    if args.message is not None:
        lines = [args.message]
    elif args.file == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            with open(args.file, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror}") from exc
    out = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            what = "the message" if args.message is not None else f"line {n}"
            out.append(orjson.dumps(parse_json(line, what)).decode())
    if not out:
        raise CommandError("no messages to publish")
    return out


def _publish(args: argparse.Namespace) -> int:
    messages = _messages(args)
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        if args.message is not None:
            params = {"app_id": app_id, "topic": args.topic, "message": messages[0]}
            rows: Sequence[object] = [conn.execute(q("publish_message"), params).fetchone()]
        else:  # one statement: increasing ids, one notification, all or nothing
            params = {"app_id": app_id, "topic": args.topic, "messages": f"[{','.join(messages)}]"}
            rows = conn.execute(q("publish_batch"), params).fetchall()
    emit(args, rows[0] if args.message is not None else rows, key="messages")
    return 0


def register(sub: Sub) -> None:
    tokens = group(sub, "tokens", "subscriber tokens for realtime topics")
    mint = leaf(tokens, "mint", "mint a subscriber token for a topic")
    mint.add_argument("app", help="app id or slug")
    mint.add_argument("topic", help="topic name")
    mint.add_argument(
        "--ttl", type=int, default=3600, help="seconds the token is valid (default 3600)"
    )
    mint.set_defaults(func=_tokens_mint)
    rotate = leaf(tokens, "rotate", "replace the app's signing key; old tokens work for --grace s")
    rotate.add_argument("app", help="app id or slug")
    rotate.add_argument("--grace", type=int, default=3600, help="seconds (default 3600)")
    rotate.set_defaults(func=_tokens_rotate)

    topics = group(sub, "topics", "create, list, change and delete topics")
    create = leaf(topics, "create", "create a topic")
    create.add_argument("app", help="app id or slug")
    create.add_argument("name", help="topic name: 1-128 of A-Z a-z 0-9 _ . : -")
    create.add_argument("--external", action="store_true", help="open the topic to SSE subscribers")
    create.add_argument("--auth-mode", choices=("public", "token"), default="token")
    create.add_argument(
        "--presence", action="store_true", help="track who is here (subjects of its tokens)"
    )
    create.set_defaults(func=_topics_create)
    lst = leaf(topics, "list", "list an app's topics")
    lst.add_argument("app", help="app id or slug")
    lst.set_defaults(func=_topics_list)
    update = leaf(topics, "update", "change a topic's external flag, auth mode and/or presence")
    update.add_argument("app", help="app id or slug")
    update.add_argument("name", help="topic name")
    flag = update.add_mutually_exclusive_group()
    flag.add_argument("--external", dest="external", action="store_true", default=None)
    flag.add_argument("--internal", dest="external", action="store_false")
    update.add_argument("--auth-mode", choices=("public", "token"))
    who = update.add_mutually_exclusive_group()
    who.add_argument("--presence", dest="presence", action="store_true", default=None)
    who.add_argument("--no-presence", dest="presence", action="store_false")
    update.set_defaults(func=_topics_update)
    delete = leaf(topics, "delete", "delete a topic and its messages (ends its streams)")
    delete.add_argument("app", help="app id or slug")
    delete.add_argument("name", help="topic name")
    delete.set_defaults(func=_topics_delete)

    pub = leaf(sub, "publish", "publish a JSON message (or a file of them) to a topic")
    pub.add_argument("app", help="app id or slug")
    pub.add_argument("topic", help="topic name")
    pub.add_argument("message", nargs="?", help="the message, as JSON (e.g. '{\"hello\": 1}')")
    pub.add_argument(
        "--file", "-f", help="publish one JSON message per line of FILE (- for stdin), atomically"
    )
    pub.set_defaults(func=_publish)
