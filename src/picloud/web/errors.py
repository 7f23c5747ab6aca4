"""The JSON error envelope and the mapping of failures onto HTTP statuses.

Every error leaves the server as ``{"error": {"code": ..., "message": ...}}``.
SQL functions signal bad input by SQLSTATE, never by message text:
class 22 (22023 ...)/23514/23502/23503 -> 400, P0002 -> 404, 23505 and PC409 (version
conflict) -> 409, 54000 -> 413.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
import psycopg
from aiohttp import web
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str, code: str = "invalid_input") -> ApiError:
    return ApiError(400, code, message)


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, "not_found", message)


def forbidden(message: str = "this key lacks the capability for this action") -> ApiError:
    return ApiError(403, "forbidden", message)


def unauthorized(message: str = "missing or invalid API key") -> ApiError:
    return ApiError(401, "unauthorized", message)


# A 503 (database unreachable or busy) is transient: clients may try again this soon.
RETRY_AFTER_SEC = "1"


def error_response(status: int, code: str, message: str) -> web.Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    headers = {"Retry-After": RETRY_AFTER_SEC} if status == 503 else None
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


# SQLSTATE the data-source functions raise when an If-Match version does not match.
VERSION_CONFLICT = "PC409"


def _from_database(exc: psycopg.Error) -> ApiError | None:
    diag = exc.diag
    primary = diag.message_primary or "invalid input"
    if isinstance(exc, pg_errors.UniqueViolation):
        return ApiError(409, "conflict", f"already exists ({diag.constraint_name or 'unique'})")
    if isinstance(exc, pg_errors.CheckViolation):
        return ApiError(400, "invalid_input", f"invalid value ({diag.constraint_name or 'check'})")
    if isinstance(exc, pg_errors.NotNullViolation):
        return ApiError(400, "invalid_input", f"{diag.column_name or 'a field'} is required")
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return ApiError(400, "invalid_reference", f"unknown reference ({diag.constraint_name})")
    if isinstance(exc, psycopg.DataError):
        # Any SQLSTATE class 22: 22023 from our functions, and e.g. 22P05 for a \u0000
        # inside a JSON string (psycopg gives most of them their own class).
        return ApiError(400, "invalid_input", primary)
    if isinstance(exc, pg_errors.NoDataFound):
        return ApiError(404, "not_found", primary)
    if isinstance(exc, pg_errors.ProgramLimitExceeded):
        return ApiError(413, "too_large", primary)
    if diag.sqlstate == VERSION_CONFLICT:
        return ApiError(409, "version_conflict", diag.message_primary or "version conflict")
    if isinstance(exc, psycopg.OperationalError):
        return ApiError(503, "unavailable", "the database is unavailable; try again")
    return None


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "error")
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        if exc.status == 404:
            message = f"no route for {request.method} {request.path}"
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        return error_response(exc.status, code, message)
    except psycopg.Error as exc:
        mapped = _from_database(exc)
        if mapped is None:
            log.exception("database error on %s %s", request.method, request.path)
            return error_response(500, "internal", "internal error")
        return error_response(mapped.status, mapped.code, mapped.message)
    except PoolTimeout:
        return error_response(503, "unavailable", "the database is busy or unavailable; try again")
