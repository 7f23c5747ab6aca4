"""Dead letters made in bulk straight in SQL (as a long outage of a webhook would leave)."""

from __future__ import annotations

from typing import Any

import psycopg

from picloud.db import Row


def seed_dead_letters(
    db: psycopg.Connection[Row],
    app_id: Any,
    trigger_id: Any,
    handler_id: Any,
    n: int,
    *,
    source: str = "kv",
    age: str = "0 seconds",
) -> list[int]:
    """``n`` dead letters of one trigger, created ``age`` ago; their ids, oldest first."""
    rows = db.execute(
        """INSERT INTO picloud.dead_letters
               (app_id, delivery_id, trigger_id, handler_id, source, subject, event, attempts,
                last_error, created_at)
           SELECT %(app)s, -g, %(trigger)s, %(handler)s, %(source)s, 'k' || g,
                  jsonb_build_object('type', 'set', 'n', g), 3, 'HTTP 503',
                  now() - %(age)s::interval
             FROM generate_series(1, %(n)s) g
           RETURNING id""",
        {
            "app": app_id,
            "trigger": trigger_id,
            "handler": handler_id,
            "source": source,
            "n": n,
            "age": age,
        },
    ).fetchall()
    return sorted(r["id"] for r in rows)
