"""Running one claimed delivery: a signed webhook POST or an SQL function call."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from picloud.db import Row
from picloud.queries import q

# schema.function, both plain lower-case identifiers (as handlers_validate requires too).
FUNCTION_NAME = re.compile(r"^([a-z_][a-z0-9_]{0,62})\.([a-z_][a-z0-9_]{0,62})$")
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
    body = webhook_body(d)
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
    except aiohttp.ClientError as exc:
        raise HandlerFailed(f"{type(exc).__name__}: {exc}") from exc


def sql_function(name: str | None, allowed: tuple[str, ...]) -> sql.Composed:
    """``schema.fn`` as a safely quoted SQL name, if it is well formed and allowed."""
    match = FUNCTION_NAME.fullmatch(name or "")
    if match is None:
        raise HandlerFailed(f"bad SQL handler name {name!r}")
    schema, fn = match.groups()
    if schema not in allowed:
        raise HandlerFailed(f"schema {schema!r} is not in PICLOUD_SQL_HANDLER_SCHEMAS")
    return sql.SQL("SELECT {}.{}(%s::jsonb)").format(sql.Identifier(schema), sql.Identifier(fn))


class Stale(Exception):
    """The lease was lost before completion; the handler's work is rolled back."""


async def run_sql_handler(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]],
    d: Claimed,
    worker: str,
    timeout_ms: int,
    allowed: tuple[str, ...],
) -> bool:
    """Call the function and complete the delivery in one transaction.

    So an SQL handler's effects commit exactly when the delivery is marked done. Returns
    False when the lease was lost (everything rolled back); raises HandlerFailed when the
    function raised or ran out of time.
    """
    call = sql_function(d.function, allowed)
    async with pool.connection() as conn:
        try:
            async with conn.transaction():
                await conn.execute(q("set_statement_timeout"), {"ms": str(timeout_ms)})
                await conn.execute(call, (Jsonb(d.event),))
                row = await (
                    await conn.execute(q("complete_delivery"), {"id": d.id, "worker": worker})
                ).fetchone()
                if row is None or not row["ok"]:
                    raise Stale
        except Stale:
            return False
        except psycopg.errors.QueryCanceled as exc:
            raise HandlerFailed(f"timed out after {timeout_ms} ms") from exc
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise
            message = exc.diag.message_primary or str(exc)
            raise HandlerFailed(f"{exc.diag.sqlstate or 'error'}: {message}") from exc
    return True
