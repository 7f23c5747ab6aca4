"""An app's data from the command line: kv entries, documents and files.

Files live on this machine's PICLOUD_FILES_ROOT: run these where the server keeps them.
"""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from psycopg.types.json import Jsonb

from picloud.cli.common import CommandError, Sub, connect, emit, group, leaf, parse_json
from picloud.cli.common import resolve_app_id as app_of
from picloud.files.store import BlobStore, BlobTooLarge
from picloud.queries import q
from picloud.settings import load_settings

PAGE_MAX = 1000


def _limit(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= PAGE_MAX:
        raise argparse.ArgumentTypeError(f"between 1 and {PAGE_MAX}")
    return value


def _kv_get(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {"app_id": app_of(conn, args.app), "key": args.key}
        row = conn.execute(q("cli_kv_get"), params).fetchone()
    if row is None:
        raise CommandError(f"no key {args.key!r}")
    emit(args, row)
    return 0


def _kv_put(args: argparse.Namespace) -> int:
    value = parse_json(args.value, "the value")
    with connect() as conn:
        params = {"app_id": app_of(conn, args.app), "key": args.key, "value": Jsonb(value)}
        row = conn.execute(q("cli_kv_set"), params).fetchone()
    emit(args, row)
    return 0


def _kv_delete(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {"app_id": app_of(conn, args.app), "key": args.key}
        if conn.execute(q("cli_kv_delete"), params).fetchone() is None:
            raise CommandError(f"no key {args.key!r}")
    emit(args, {"deleted": args.key})
    return 0


def _kv_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {
            "app_id": app_of(conn, args.app),
            "prefix": args.prefix,
            "cursor": args.after,
            "limit": args.limit,
        }
        emit(args, conn.execute(q("cli_kv_list"), params).fetchall(), key="entries")
    return 0


def _docs_get(args: argparse.Namespace) -> int:
    with connect() as conn:
        ref = {"collection": args.collection, "id": args.id}
        conn.execute(q("check_doc_ref"), ref)
        row = conn.execute(q("doc_get"), {"app_id": app_of(conn, args.app), **ref}).fetchone()
    if row is None:
        raise CommandError(f"no document {args.id!r} in {args.collection!r}")
    emit(args, row)
    return 0


def _docs_put(args: argparse.Namespace) -> int:
    data = parse_json(args.data, "the document")
    with connect() as conn:
        params = {
            "app_id": app_of(conn, args.app),
            "collection": args.collection,
            "id": args.id,
            "data": Jsonb(data),
            "if_version": args.if_version,
        }
        row = conn.execute(q("doc_put"), params).fetchone()
    emit(args, row)
    return 0


def _docs_delete(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {
            "app_id": app_of(conn, args.app),
            "collection": args.collection,
            "id": args.id,
            "if_version": args.if_version,
        }
        row = conn.execute(q("doc_delete"), params).fetchone()
    if row is None or row["version"] is None:
        raise CommandError(f"no document {args.id!r} in {args.collection!r}")
    emit(args, {"deleted": args.id, "version": row["version"]})
    return 0


def _docs_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        conn.execute(q("check_doc_ref"), {"collection": args.collection, "id": None})
        params = {
            "app_id": app_of(conn, args.app),
            "collection": args.collection,
            "cursor": args.after,
            "limit": args.limit,
        }
        emit(args, conn.execute(q("doc_list"), params).fetchall(), key="docs")
    return 0


async def _chunks(source: Path) -> AsyncIterator[bytes]:
    with source.open("rb") as fh:
        while chunk := fh.read(1 << 16):
            yield chunk


def _files_put(args: argparse.Namespace) -> int:
    source = Path(args.source)
    if not source.is_file():
        raise CommandError(f"{args.source}: no such file")
    settings = load_settings()
    store = BlobStore(settings.files_root)
    content_type = args.content_type or mimetypes.guess_type(source.name)[0]
    with connect(settings) as conn:
        app_id = app_of(conn, args.app)
        conn.execute(q("check_file_path"), {"path": args.path})
        try:
            written = asyncio.run(store.write(app_id, _chunks(source), settings.max_file_bytes))
        except BlobTooLarge as exc:
            raise CommandError(f"larger than PICLOUD_MAX_FILE_BYTES ({exc.limit})") from exc
        params = {
            "app_id": app_id,
            "path": args.path,
            "size": written.size,
            "sha256": written.sha256,
            "content_type": content_type or "application/octet-stream",
            "blob": written.blob,
        }
        try:
            row = conn.execute(q("file_put"), params).fetchone()
        except BaseException:
            store.discard(app_id, written.blob)
            raise
    assert row is not None
    if row["old_blob"] and row["old_blob"] != written.blob:
        store.discard(app_id, row["old_blob"])
    emit(args, {k: v for k, v in row.items() if k not in ("blob", "old_blob")})
    return 0


def _files_get(args: argparse.Namespace) -> int:
    settings = load_settings()
    with connect(settings) as conn:
        app_id = app_of(conn, args.app)
        row = conn.execute(q("file_get"), {"app_id": app_id, "path": args.path}).fetchone()
    if row is None:
        raise CommandError(f"no file {args.path!r}")
    try:
        with BlobStore(settings.files_root).open(app_id, row["blob"]) as fh:
            out = sys.stdout.buffer
            while chunk := fh.read(1 << 16):
                out.write(chunk)
            out.flush()
    except FileNotFoundError as exc:
        raise CommandError(f"the blob of {args.path!r} is not under PICLOUD_FILES_ROOT") from exc
    return 0


def _files_delete(args: argparse.Namespace) -> int:
    settings = load_settings()
    with connect(settings) as conn:
        app_id = app_of(conn, args.app)
        row = conn.execute(q("file_delete"), {"app_id": app_id, "path": args.path}).fetchone()
    if row is None:
        raise CommandError(f"no file {args.path!r}")
    BlobStore(settings.files_root).discard(app_id, row["blob"])
    emit(args, {"deleted": args.path})
    return 0


def _files_list(args: argparse.Namespace) -> int:
    with connect() as conn:
        params = {
            "app_id": app_of(conn, args.app),
            "prefix": args.prefix,
            "cursor": args.after,
            "limit": args.limit,
        }
        emit(args, conn.execute(q("file_list"), params).fetchall(), key="files")
    return 0


def _page(parser: argparse.ArgumentParser, prefix: bool) -> None:
    if prefix:
        parser.add_argument("--prefix", default="", help="only names starting with this")
    parser.add_argument("--after", help="start after this name (paging)")
    parser.add_argument("--limit", type=_limit, default=100, help=f"1-{PAGE_MAX} (default 100)")


def register(sub: Sub) -> None:
    kv = group(sub, "kv", "an app's key-value entries")
    for name, fn, help in (
        ("get", _kv_get, "one entry"),
        ("put", _kv_put, "create or replace an entry"),
        ("delete", _kv_delete, "delete an entry"),
    ):
        cmd = leaf(kv, name, help)
        cmd.add_argument("app", help="app id or slug")
        cmd.add_argument("key", help="the key")
        if name == "put":
            cmd.add_argument("value", help="the value, as JSON")
        cmd.set_defaults(func=fn)
    kl = leaf(kv, "list", "entries in key order")
    kl.add_argument("app", help="app id or slug")
    _page(kl, prefix=True)
    kl.set_defaults(func=_kv_list)

    docs = group(sub, "docs", "an app's documents")
    for name, fn, help in (
        ("get", _docs_get, "one document"),
        ("put", _docs_put, "create or replace a document"),
        ("delete", _docs_delete, "delete a document"),
    ):
        cmd = leaf(docs, name, help)
        cmd.add_argument("app", help="app id or slug")
        cmd.add_argument("collection", help="collection name")
        cmd.add_argument("id", help="document id")
        if name == "put":
            cmd.add_argument("data", help="the document, a JSON object")
        if name != "get":
            cmd.add_argument("--if-version", type=int, help="only at this version")
        cmd.set_defaults(func=fn)
    dl = leaf(docs, "list", "a collection's documents in id order")
    dl.add_argument("app", help="app id or slug")
    dl.add_argument("collection", help="collection name")
    _page(dl, prefix=False)
    dl.set_defaults(func=_docs_list)

    files = group(sub, "files", "an app's files (on this machine's PICLOUD_FILES_ROOT)")
    put = leaf(files, "put", "store a local file at PATH")
    put.add_argument("app", help="app id or slug")
    put.add_argument("path", help="the file's path in the app")
    put.add_argument("source", help="local file to read")
    put.add_argument("--content-type", help="default: guessed from the name")
    put.set_defaults(func=_files_put)
    for name, fn, help in (
        ("get", _files_get, "write a file's content to stdout"),
        ("delete", _files_delete, "delete a file"),
    ):
        cmd = leaf(files, name, help)
        cmd.add_argument("app", help="app id or slug")
        cmd.add_argument("path", help="the file's path in the app")
        cmd.set_defaults(func=fn)
    fl = leaf(files, "list", "files (metadata) in path order")
    fl.add_argument("app", help="app id or slug")
    _page(fl, prefix=True)
    fl.set_defaults(func=_files_list)
