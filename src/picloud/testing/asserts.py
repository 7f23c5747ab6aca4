"""SQL assertion helpers for an app's tests: what the database says happened.

``app`` is an app id (uuid or text) or anything with an ``id`` attribute, such as the
``picloud_app`` fixture's value.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from picloud.db import Row


class _HasId(Protocol):
    @property
    def id(self) -> str | uuid.UUID: ...


AppRef = str | uuid.UUID | _HasId


def app_id_of(app: AppRef) -> uuid.UUID:
    if isinstance(app, uuid.UUID):
        return app
    if isinstance(app, str):
        return uuid.UUID(app)
    return app_id_of(app.id)


def messages_for(conn: psycopg.Connection[Row], app: AppRef, topic: str) -> list[Row]:
    """The topic's retained messages (``seq``, ``message``, ``published_at``), oldest first."""
    return conn.execute(
        "SELECT seq, message, published_at FROM picloud.messages"
        " WHERE app_id = %s AND topic = %s ORDER BY seq",
        (app_id_of(app), topic),
    ).fetchall()


_MISSING: Any = object()


def assert_published(
    conn: psycopg.Connection[Row],
    app: AppRef,
    topic: str,
    message: Any = _MISSING,
    *,
    count: int | None = None,
) -> list[Row]:
    """Assert that the topic's log holds ``message`` (compared as jsonb), or any message
    when none is given, and exactly ``count`` matching rows when that is given; returns
    the matching rows."""
    sql = "SELECT seq, message, published_at FROM picloud.messages WHERE app_id = %s AND topic = %s"
    params: list[Any] = [app_id_of(app), topic]
    if message is not _MISSING:
        sql += " AND message = %s"
        params.append(Jsonb(message))
    rows = conn.execute(sql + " ORDER BY seq", params).fetchall()
    what = "any message" if message is _MISSING else f"message {message!r}"
    if count is None:
        assert rows, f"{what} was not published to {topic!r}"
    else:
        assert len(rows) == count, f"{what} on {topic!r}: {len(rows)} rows, expected {count}"
    return rows


def deliveries_for(
    conn: psycopg.Connection[Row],
    app: AppRef,
    *,
    source: str | None = None,
    subject: str | None = None,
    status: str | None = None,
    trigger_id: str | uuid.UUID | None = None,
) -> list[Row]:
    """The app's outbox deliveries (optionally of one source, subject, status or
    trigger), oldest first."""
    return conn.execute(
        "SELECT * FROM picloud.deliveries WHERE app_id = %(app)s"
        " AND (%(source)s::text IS NULL OR source = %(source)s)"
        " AND (%(subject)s::text IS NULL OR subject = %(subject)s)"
        " AND (%(status)s::text IS NULL OR status = %(status)s)"
        " AND (%(trigger)s::uuid IS NULL OR trigger_id = %(trigger)s)"
        " ORDER BY id",
        {
            "app": app_id_of(app),
            "source": source,
            "subject": subject,
            "status": status,
            "trigger": trigger_id,
        },
    ).fetchall()


def wait_for_delivery(
    conn: psycopg.Connection[Row],
    app: AppRef,
    *,
    status: str = "done",
    timeout: float = 10.0,
    **match: Any,
) -> Row:
    """Poll until one of the app's deliveries (filtered as in ``deliveries_for``) has
    ``status``; returns it, or fails with what the deliveries looked like."""
    deadline = time.monotonic() + timeout
    while True:
        rows = deliveries_for(conn, app, **match)
        for row in rows:
            if row["status"] == status:
                return row
        if time.monotonic() >= deadline:
            seen = [(r["id"], r["source"], r["subject"], r["status"]) for r in rows]
            raise AssertionError(f"no delivery reached {status!r} in {timeout}s; saw {seen}")
        time.sleep(0.05)
