"""Helpers for the data-source tests: apps, triggers and deliveries made in SQL."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from picloud.db import Row

Conn = psycopg.Connection[Row]


def add_trigger(db: Conn, app_id: uuid.UUID, source: str, match: str | None = None) -> uuid.UUID:
    handler = db.execute(
        "INSERT INTO picloud.handlers (app_id, name, kind, url) "
        "VALUES (%s, %s, 'webhook', 'http://127.0.0.1:9/hook') RETURNING id",
        (app_id, f"h-{source}-{uuid.uuid4().hex[:6]}"),
    ).fetchone()
    assert handler is not None
    row = db.execute(
        "INSERT INTO picloud.triggers (app_id, name, source, filter, handler_id) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (
            app_id,
            f"t-{source}-{uuid.uuid4().hex[:6]}",
            source,
            Jsonb({"match": match} if match else {}),
            handler["id"],
        ),
    ).fetchone()
    assert row is not None
    trigger_id: uuid.UUID = row["id"]
    return trigger_id


def deliveries(db: Conn, app_id: uuid.UUID, source: str) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT subject, event FROM picloud.deliveries WHERE app_id = %s AND source = %s "
        "ORDER BY id",
        (app_id, source),
    ).fetchall()
