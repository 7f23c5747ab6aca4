"""Strict parsing of what a request names by number or id: path ids, ``Last-Event-ID``,
``If-Match``, ``limit``/``after`` query values.

Numbers are ASCII digits only (``str.isdigit`` and ``int`` also take '²' or '٣') and at
most 19 of them, range-checked against bigint, so nothing malformed reaches SQL or
``int()``. A malformed value is 400; a well-formed id that names nothing stays 404.
"""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from picloud.realtime.cursor import Cursor, parse_cursor, parse_stream_cursor
from picloud.web.errors import ApiError, bad_request

BIGINT_MAX = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def digits(raw: str, *, minimum: int = 0, maximum: int = BIGINT_MAX) -> int | None:
    """``raw`` as an integer when it is 1-19 ASCII digits within the bounds; else None."""
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if minimum <= value <= maximum else None


def path_id(request: web.Request, name: str, what: str) -> int:
    """A bigint id in the path: 400 unless ASCII digits within bigint."""
    value = digits(request.match_info[name], minimum=1)
    if value is None:
        raise bad_request(f"a {what} id is a positive integer of at most 19 digits", "invalid_id")
    return value


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    """A uuid in the path; anything that is not one names nothing (404)."""
    raw = request.match_info[name]
    if not raw.isascii():
        raise ApiError(404, "not_found", f"no such {name.removesuffix('_id')}")
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise ApiError(404, "not_found", f"no such {name.removesuffix('_id')}") from exc


def query_int(
    request: web.Request, name: str, default: int, *, minimum: int = 0, maximum: int = 1000
) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    value = digits(raw, minimum=minimum, maximum=maximum)
    if value is None:
        raise bad_request(
            f"query parameter {name!r} must be an integer between {minimum} and {maximum}"
        )
    return value


def _last_event_text(request: web.Request) -> str | None:
    raw = request.headers.get("Last-Event-ID")  # (HTTP strips the spaces around a value)
    return raw or request.query.get("last_event_id") or None


def last_event_id(request: web.Request) -> Cursor | None:
    """The stream position to resume after: ``Last-Event-ID``, else ``?last_event_id=``
    (a cursor of picloud.realtime.cursor: ASCII digits within bigint, no other form)."""
    raw = _last_event_text(request)
    if raw is None:
        return None
    try:
        return parse_cursor(raw)
    except ValueError as exc:
        raise bad_request(f"Last-Event-ID: {exc}") from None


def stream_last_event_id(request: web.Request, topics: list[str]) -> dict[str, Cursor]:
    """A multiplexed stream's position per topic, from the same header or parameter (empty
    without one); the stream is of ``topics`` (a cursor of other topics is refused)."""
    raw = _last_event_text(request)
    if raw is None:
        return {}
    try:
        return parse_stream_cursor(raw, topics)
    except ValueError as exc:
        raise bad_request(f"Last-Event-ID: {exc}") from None


def if_match_version(request: web.Request) -> int | None:
    """The version named by ``If-Match: "<n>"`` (quotes optional), or None without one."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    value = digits(raw.strip().removeprefix("W/").strip('"'), minimum=1)
    if value is None:
        raise bad_request('If-Match must be a document version, e.g. "3"', "invalid_if_match")
    return value
