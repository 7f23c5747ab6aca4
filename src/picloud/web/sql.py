"""Running a named query on the server's pool from a request handler."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from picloud.queries import q
from picloud.web.state import state_of


async def fetch_one(
    request: web.Request, query: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    """The first row of the named query, or None."""
    async with state_of(request).db.connection() as conn:
        return await (await conn.execute(q(query), params)).fetchone()


async def fetch_all(
    request: web.Request, query: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every row of the named query."""
    async with state_of(request).db.connection() as conn:
        return await (await conn.execute(q(query), params)).fetchall()
