"""Running one claimed delivery: a signed webhook POST or an SQL function call."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from picloud.db import Row
from picloud.dispatcher.egress import blocked_message
from picloud.queries import q

ERROR_BODY_CHARS = 200


class HandlerFailed(Exception):
    """The handler ran and failed (or could not run); the message is the recorded error."""


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to this dispatcher, with what it needs to run the handler."""

    id: int
    app_id: uuid.UUID
    trigger_id: uuid.UUID
    handler_id: uuid.UUID
    source: str
    subject: str
    event: Any
    attempt: int
    max_attempts: int
    handler_kind: str | None
    url: str | None
    secret: str | None
    function: str | None
    timeout_ms: int | None

    @classmethod
    def from_row(cls, row: Row) -> Claimed:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """``PiCloud-Signature``: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def webhook_body(d: Claimed) -> bytes:
    return orjson.dumps(
        {
            "delivery_id": d.id,
            "app_id": d.app_id,
            "trigger_id": d.trigger_id,
            "source": d.source,
            "event": d.event,
            "attempt": d.attempt,
        }
    )


async def call_webhook(session: aiohttp.ClientSession, d: Claimed, timeout_sec: float) -> None:
    """POST the signed delivery; 2xx is success, anything else raises HandlerFailed."""
    if not d.url or not d.secret:
        raise HandlerFailed("webhook handler without url or secret")
    try:
        body = webhook_body(d)
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise HandlerFailed(f"the webhook body cannot be built: {exc}") from exc
    headers = {
        "Content-Type": "application/json",
        "PiCloud-Delivery-Id": str(d.id),
        "PiCloud-Signature": signature(d.secret, body, int(time.time())),
    }
    try:
        async with session.post(
            d.url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_sec),
            allow_redirects=False,
        ) as resp:
            if 200 <= resp.status < 300:
                return
            text = (await resp.content.read(ERROR_BODY_CHARS)).decode("utf-8", "replace")
            raise HandlerFailed(f"HTTP {resp.status}: {text}".rstrip(": "))
    except TimeoutError as exc:
        raise HandlerFailed(f"timed out after {timeout_sec:.3g}s") from exc
    except aiohttp.ClientConnectorError as exc:
        blocked = blocked_message(exc)
        raise HandlerFailed(blocked or f"{type(exc).__name__}: {exc}") from exc
    except aiohttp.ClientError as exc:
        raise HandlerFailed(f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class BatchOutcome:
    """What ``picloud.run_sql_deliveries`` recorded for one delivery: ``ok``, ``retry``,
    ``dead`` or ``stale`` (the lease was lost, the handler did not run)."""

    outcome: str
    error: str | None


async def run_sql_batch(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]],
    ds: list[Claimed],
    worker: str,
    timeout_ms: int,
) -> dict[int, BatchOutcome]:
    """Run the SQL handlers of ``ds`` in one round trip and one transaction
    (``picloud.run_sql_deliveries``); every outcome is recorded in the database when this
    returns.

    ``timeout_ms`` is the statement timeout of the whole batch (the caller passes the
    smallest handler timeout of the batch, so no handler in it runs longer than its own).
    HandlerFailed when the batch did not commit (it timed out, or failed outside the
    handlers): nothing of it was recorded.
    """
    async with pool.connection() as conn:
        cur = psycopg.AsyncClientCursor(conn)
        try:
            await cur.execute(
                q("run_sql_deliveries"),
                {
                    "app_ids": [d.app_id for d in ds],
                    "ids": [d.id for d in ds],
                    "worker": worker,
                    "timeout_ms": str(timeout_ms),
                },
            )
        except psycopg.Error as exc:
            if conn.broken:
                raise  # the database went away: the leases run out, the runs repeat
            await conn.rollback()
            if isinstance(exc, psycopg.errors.QueryCanceled):
                raise HandlerFailed(f"timed out after {timeout_ms} ms") from exc
            message = exc.diag.message_primary or str(exc)
            raise HandlerFailed(f"{exc.diag.sqlstate or 'error'}: {message}") from exc
        # BEGIN, SET, the SELECT's rows, COMMIT: find the rows.
        while cur.description is None and cur.nextset():
            pass
        rows = await cur.fetchall()
    return {int(r["id"]): BatchOutcome(str(r["outcome"]), r["error"]) for r in rows}
