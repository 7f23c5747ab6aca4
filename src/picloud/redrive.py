"""Redrive of dead letters: what the SQL says when a retry is refused, shaped once for the
HTTP API and the CLI alike."""

from __future__ import annotations

from typing import Any

import psycopg

# The SQLSTATE picloud.retry_dead_letter raises for a dead letter retried already
# (picloud.already_retried_sqlstate() in sql/42_dead_letters.sql).
ALREADY_RETRIED = "PC410"


def already_retried(exc: psycopg.Error) -> dict[str, Any]:
    """``{"code": "already_retried", "message", "delivery_id"}`` from the SQL refusal."""
    detail = exc.diag.message_detail or ""
    return {
        "code": "already_retried",
        "message": f"{exc.diag.message_primary}; retry with force to enqueue it again",
        "delivery_id": int(detail) if detail.isascii() and detail.isdigit() else None,
    }
