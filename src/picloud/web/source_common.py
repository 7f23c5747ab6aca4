"""Helpers shared by the data-source HTTP modules (kv, docs, files, cron)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from picloud.web.errors import bad_request
from picloud.web.params import query_int

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True)
class Page:
    limit: int
    cursor: str | None
    prefix: str

    def params(self) -> dict[str, Any]:
        # One row more than asked tells whether there is a next page.
        return {"limit": self.limit + 1, "cursor": self.cursor, "prefix": self.prefix}

    def shape(
        self, rows: list[dict[str, Any]], key: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The page's rows and the cursor of the next page (None on the last one)."""
        if len(rows) > self.limit:
            rows = rows[: self.limit]
            return rows, str(rows[-1][key])
        return rows, None


def page_of(request: web.Request) -> Page:
    """``?limit=&cursor=&prefix=`` of a list (cursor: the last item of the previous page)."""
    limit = query_int(request, "limit", DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)
    cursor = request.query.get("cursor") or None
    return Page(limit, cursor, request.query.get("prefix", ""))


def path_param(request: web.Request, name: str, what: str) -> str:
    """A path parameter, refusing NUL (PostgreSQL text cannot hold it) with a clear 400;
    every other rule is checked by the SQL function that receives it."""
    value = request.match_info[name]
    if "\x00" in value:
        raise bad_request(f"invalid {what}: NUL characters are not allowed")
    return value
