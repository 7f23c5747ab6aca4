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
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from picloud.db import Row
from picloud.dispatcher.egress import blocked_message
from picloud.queries import q

ERROR_BODY_CHARS = 200
# Raised by picloud.complete_delivery_or_raise when the lease was lost.
LEASE_LOST = "PCL01"


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


def sql_call(d: Claimed, worker: str, timeout_ms: int) -> sql.Composed:
    """One simple-protocol message that runs an SQL handler and completes its delivery.

    The statements share one implicit transaction: the handler's work commits exactly
    when the delivery is marked done, and rolls back when it fails, times out, or the lease
    was lost. picloud.run_sql_handler checks the function's name and schema (as the batch
    paths do); every value is quoted with sql.Literal.
    """
    return sql.SQL(
        "SET LOCAL statement_timeout = {timeout};"
        " SELECT picloud.run_sql_handler({function}, {event}::jsonb);"
        " SELECT picloud.complete_delivery_or_raise({id}, {worker})"
    ).format(
        timeout=sql.Literal(str(timeout_ms)),
        function=sql.Literal(d.function),
        event=sql.Literal(orjson.dumps(d.event).decode()),
        id=sql.Literal(d.id),
        worker=sql.Literal(worker),
    )


def _handler_error(exc: psycopg.Error, timeout_ms: int) -> HandlerFailed | None:
    """The recorded error for a failed SQL handler run; None when the lease was lost."""
    if exc.diag.sqlstate == LEASE_LOST:
        return None
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return HandlerFailed(f"timed out after {timeout_ms} ms")
    message = exc.diag.message_primary or str(exc)
    return HandlerFailed(f"{exc.diag.sqlstate or 'error'}: {message}")


SqlOutcome = HandlerFailed | bool  # True: done; False: lease lost; HandlerFailed: failed


async def run_sql_handlers(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]],
    runs: list[tuple[Claimed, int]],
    worker: str,
) -> dict[int, SqlOutcome]:
    """Run SQL handlers ``(delivery, timeout_ms)`` in order on one connection, each in a
    transaction of its own with its completion, several per round trip.

    The server stops at the first error in a message; which runs before it committed is
    read back from their attempt records (ok, by this worker), and the rest is sent again.
    """
    outcomes: dict[int, SqlOutcome] = {}
    pending = [(d, timeout_ms, sql_call(d, worker, timeout_ms)) for d, timeout_ms in runs]
    async with pool.connection() as conn:
        while pending:
            message = sql.SQL("; ").join(
                sql.SQL("BEGIN; {}; COMMIT").format(call) for _, _, call in pending
            )
            try:
                await psycopg.AsyncClientCursor(conn).execute(message)
            except psycopg.Error as exc:
                if conn.broken:
                    raise  # the database went away: the leases run out, the runs repeat
                await conn.rollback()
                done = await conn.execute(
                    q("completed_by"),
                    {
                        "app_ids": [d.app_id for d, _, _ in pending],
                        "ids": [d.id for d, _, _ in pending],
                        "worker": worker,
                    },
                )
                ok = {row["delivery_id"] for row in await done.fetchall()}
                failed_at = next(
                    (i for i, (d, _, _) in enumerate(pending) if d.id not in ok), len(pending)
                )
                for d, _, _ in pending[:failed_at]:
                    outcomes[d.id] = True
                if failed_at < len(pending):
                    d, timeout_ms, _ = pending[failed_at]
                    error = _handler_error(exc, timeout_ms)
                    outcomes[d.id] = False if error is None else error
                pending = pending[failed_at + 1 :]
                continue
            for d, _, _ in pending:
                outcomes[d.id] = True
            pending = []
    return outcomes


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
) -> dict[int, BatchOutcome] | None:
    """Run the SQL handlers of ``ds`` in one round trip and one transaction, each in a
    subtransaction with its completion (``picloud.run_sql_deliveries``); every outcome is
    recorded in the database when this returns.

    ``timeout_ms`` is the statement timeout of the whole batch (the caller passes the
    smallest handler timeout of the batch, so no handler in it runs longer than its own).
    None when the batch did not commit (it timed out, or failed outside the handlers):
    nothing of it was recorded, and the caller runs the deliveries one by one.
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
        except psycopg.Error:
            if conn.broken:
                raise  # the database went away: the leases run out, the runs repeat
            await conn.rollback()
            return None
        # BEGIN, SET, the SELECT's rows, COMMIT: find the rows.
        while cur.description is None and cur.nextset():
            pass
        rows = await cur.fetchall()
    return {int(r["id"]): BatchOutcome(str(r["outcome"]), r["error"]) for r in rows}
