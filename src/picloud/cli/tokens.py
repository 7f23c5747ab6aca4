"""Realtime admin commands: subscriber tokens, key rotation, topics and publishing."""

from __future__ import annotations

import argparse

import orjson
import psycopg

from picloud.cli.common import CommandError, Sub, connect, emit, resolve_app_id
from picloud.queries import q


def _tokens_mint(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        params = {"app_id": app_id, "topic": args.topic, "ttl_seconds": args.ttl}
        try:
            row = conn.execute(q("mint_subscriber_token"), params).fetchone()
        except psycopg.errors.NoDataFound as exc:
            raise CommandError(f"no topic {args.topic!r} in app {args.app!r}") from exc
    assert row is not None
    emit({"token": row["token"], "expires_at": row["expires_at"]})
    return 0


def _tokens_rotate(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        row = conn.execute(
            q("rotate_app_secret"), {"app_id": app_id, "grace_seconds": args.grace}
        ).fetchone()
    assert row is not None
    emit({"app_id": app_id, "key_version": row["key_version"], "grace_seconds": args.grace})
    return 0


def _topics_create(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        params = {
            "app_id": app_id,
            "name": args.name,
            "external_subscribable": args.external,
            "auth_mode": args.auth_mode,
        }
        try:
            row = conn.execute(q("create_topic"), params).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise CommandError(f"topic {args.name!r} exists already") from exc
    emit(row)
    return 0


def _topics_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        emit(conn.execute(q("list_topics"), {"app_id": app_id}).fetchall())
    return 0


def _publish(args: argparse.Namespace) -> int:
    try:
        message = orjson.dumps(orjson.loads(args.message)).decode()
    except orjson.JSONDecodeError as exc:
        raise CommandError(f"the message is not JSON: {exc}") from exc
    with connect() as conn:
        app_id = resolve_app_id(conn, args.app)
        params = {"app_id": app_id, "topic": args.topic, "message": message}
        try:
            row = conn.execute(q("publish_message"), params).fetchone()
        except psycopg.errors.NoDataFound as exc:
            raise CommandError(f"no topic {args.topic!r} in app {args.app!r}") from exc
    emit(row)
    return 0


def register(sub: Sub) -> None:
    tokens = sub.add_parser("tokens", help="subscriber tokens for realtime topics")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    mint = tokens_sub.add_parser("mint", help="mint a subscriber token for a topic")
    mint.add_argument("app", help="app id or slug")
    mint.add_argument("topic", help="topic name")
    mint.add_argument(
        "--ttl", type=int, default=3600, help="seconds the token is valid (default 3600)"
    )
    mint.set_defaults(func=_tokens_mint)
    rotate = tokens_sub.add_parser(
        "rotate", help="replace the app's signing key; old tokens work for --grace seconds"
    )
    rotate.add_argument("app", help="app id or slug")
    rotate.add_argument("--grace", type=int, default=3600, help="seconds (default 3600)")
    rotate.set_defaults(func=_tokens_rotate)

    topics = sub.add_parser("topics", help="create and list topics")
    topics_sub = topics.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    create = topics_sub.add_parser("create", help="create a topic")
    create.add_argument("app", help="app id or slug")
    create.add_argument("name", help="topic name: 1-128 of A-Z a-z 0-9 _ . : -")
    create.add_argument("--external", action="store_true", help="open the topic to SSE subscribers")
    create.add_argument("--auth-mode", choices=("public", "token"), default="token")
    create.set_defaults(func=_topics_create)
    lst = topics_sub.add_parser("list", help="list an app's topics")
    lst.add_argument("app", help="app id or slug")
    lst.set_defaults(func=_topics_list)

    pub = sub.add_parser("publish", help="publish a JSON message to a topic")
    pub.add_argument("app", help="app id or slug")
    pub.add_argument("topic", help="topic name")
    pub.add_argument("message", help="the message, as JSON (e.g. '{\"hello\": 1}')")
    pub.set_defaults(func=_publish)
