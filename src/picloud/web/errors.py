"""The JSON error envelope and the mapping of failures onto HTTP statuses.

Every error leaves the server as ``{"error": {"code": ..., "message": ...}}``.
SQL functions signal bad input by SQLSTATE, never by message text:
class 22 (22023 ...)/23514/23502/23503 -> 400, 28000 -> 401, 42501 -> 403, P0002 -> 404,
23505 and PC409 (version conflict) -> 409, 54000 -> 413.
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

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


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


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    if status == 503:
        headers = {"Retry-After": RETRY_AFTER_SEC, **(headers or {})}
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    429: "too_many_requests",
    415: "unsupported_media_type",
    503: "unavailable",
}


# SQLSTATE the data-source functions raise when an If-Match version does not match.
VERSION_CONFLICT = "PC409"


def refusal_of(sqlstate: str, message: str | None) -> ApiError | None:
    """The answer to a SQL function's refusal of bad input, by its SQLSTATE (and message);
    None when the SQLSTATE is not one a function raises for its caller."""
    text = message or "invalid input"
    if sqlstate.startswith("22"):
        # Any class 22: 22023 from our functions, and e.g. 22P05 for a \u0000 inside a
        # JSON string.
        return ApiError(400, "invalid_input", text)
    if sqlstate.startswith("28"):
        return ApiError(401, "unauthorized", text)  # picloud.authorize: no live key
    if sqlstate == "42501":
        return ApiError(403, "forbidden", text)
    if sqlstate == "P0002":
        return ApiError(404, "not_found", text)
    if sqlstate == "54000":
        return ApiError(413, "too_large", text)
    if sqlstate == VERSION_CONFLICT:
        return ApiError(409, "version_conflict", message or "version conflict")
    return None


def _from_database(exc: psycopg.Error) -> ApiError | None:
    diag = exc.diag
    primary = diag.message_primary or "invalid input"
    if isinstance(exc, pg_errors.UniqueViolation):
        if diag.constraint_name == "app_domains_slug_host":
            return ApiError(409, "conflict", primary)
        return ApiError(409, "conflict", f"already exists ({diag.constraint_name or 'unique'})")
    if isinstance(exc, pg_errors.CheckViolation):
        return ApiError(400, "invalid_input", f"invalid value ({diag.constraint_name or 'check'})")
    if isinstance(exc, pg_errors.NotNullViolation):
        return ApiError(400, "invalid_input", f"{diag.column_name or 'a field'} is required")
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return ApiError(400, "invalid_reference", f"unknown reference ({diag.constraint_name})")
    # psycopg raises DataError itself for text PostgreSQL cannot hold (a NUL): class 22 too.
    sqlstate = diag.sqlstate or ("22000" if isinstance(exc, psycopg.DataError) else "")
    refused = refusal_of(sqlstate, diag.message_primary or str(exc) or None)
    if refused is not None:
        return refused
    if isinstance(exc, psycopg.OperationalError):
        return ApiError(503, "unavailable", "the database is unavailable; try again")
    return None


def _undecodable_header(request: web.Request) -> str | None:
    """The name of a header whose bytes are not UTF-8 (aiohttp keeps them as surrogates,
    which nothing downstream, PostgreSQL included, can take)."""
    for name, value in request.headers.items():
        if value.isascii():
            continue  # (nearly every header: no encoding needed to know)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return name
    return None


def header_refusal(request: web.Request) -> web.Response | None:
    """The answer to a request with a header that is not UTF-8 (401 for Authorization,
    else 400); None for every other request."""
    bad_header = _undecodable_header(request)
    if bad_header is None:
        return None
    status = 401 if bad_header.lower() == "authorization" else 400
    return error_response(status, _HTTP_CODES[status], f"the {bad_header} header is not UTF-8")


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    code = _HTTP_CODES.get(exc.status, "error")
    message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
    if exc.status == 404:
        message = f"no route for {request.method} {request.path}"
    elif exc.status == 405:
        message = f"{request.method} is not allowed on {request.path}"
    response = error_response(exc.status, code, message)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def failure_response(request: web.Request, rid: str, failure: Exception) -> web.Response:
    """Every failure as the JSON envelope (web/middleware.py calls this for whatever a
    handler raised, but a client gone away or a redirect); anything unexpected as a 500
    that names the request (``rid``) and logs one ERROR line with the traceback. 4xx log
    nothing."""
    try:
        mapped = _mapped(request, failure)
    except Exception:
        mapped = None
    return mapped if mapped is not None else _internal(request, rid, failure)


def _mapped(request: web.Request, exc: Exception) -> web.Response | None:
    """The answer to an expected failure; None for anything else (a 500)."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, web.HTTPException):
        return _http_error(request, exc)
    if isinstance(exc, psycopg.Error):
        api = _from_database(exc)
        return None if api is None else error_response(api.status, api.code, api.message)
    if isinstance(exc, PoolTimeout):
        return error_response(503, "unavailable", "the database is busy or unavailable; try again")
    return None


def _internal(request: web.Request, rid: str, exc: Exception) -> web.Response:
    log.error(
        "unhandled %s on %s %s (request %s)",
        type(exc).__name__,
        request.method,
        request.path,
        rid,
        exc_info=exc,
    )
    body = {"error": {"code": "internal", "message": "internal error", "request_id": rid}}
    return web.Response(status=500, body=orjson.dumps(body), content_type="application/json")
