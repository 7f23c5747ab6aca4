"""Typed errors: one base class with the server's ``code``, ``message`` and HTTP
``status``, and a subclass per kind of failure a caller handles differently."""

from __future__ import annotations

import contextlib
import email.utils
import json
import time
from typing import Any

import httpx


class PiCloudError(Exception):
    """A request PiCloud refused or could not answer."""

    def __init__(self, message: str, *, code: str = "error", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}" if self.status else self.message


class BadRequest(PiCloudError):
    """400: the request was malformed or a value was invalid."""


class Unauthorized(PiCloudError):
    """401: no key or token, or a bad, revoked or expired one."""


class Forbidden(PiCloudError):
    """403: the key lacks the capability for this action."""


class NotFound(PiCloudError):
    """404: no such app, topic, key, document, file, ..."""


class Conflict(PiCloudError):
    """409: the write conflicts with the current state (e.g. it already exists)."""


class VersionConflict(Conflict):
    """409 ``version_conflict``: the document moved on since the ``If-Match`` version."""


class PayloadTooLarge(PiCloudError):
    """413: the message, body or file is over the server's limit."""


class RetryableError(PiCloudError):
    """A refusal that may succeed later; ``retry_after`` is the server's hint in seconds."""

    def __init__(
        self, message: str, *, code: str, status: int, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class RateLimited(RetryableError):
    """429: over a rate or size cap; wait ``retry_after`` seconds."""


class Unavailable(RetryableError):
    """503 (or no answer at all): the server or its database cannot serve right now."""


class ConnectionFailed(Unavailable):
    """The server could not be reached, or the connection broke mid-request."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="connection_failed", status=0)


_BY_STATUS: dict[int, type[PiCloudError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
}


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isascii() and raw.isdigit():
        return float(raw)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(raw)
        return max(0.0, when.timestamp() - time.time())
    return None


def error_from_response(response: httpx.Response, body: bytes) -> PiCloudError:
    """The typed error for a non-2xx response whose body was read into ``body``."""
    status = response.status_code
    code, message = _HTTP_FALLBACK.get(status, "error"), response.reason_phrase or "error"
    with contextlib.suppress(ValueError):
        envelope: Any = json.loads(body)
        err = envelope.get("error") if isinstance(envelope, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code", code))
            message = str(err.get("message", message))
    if status == 429:
        return RateLimited(message, code=code, status=status, retry_after=retry_after(response))
    if status == 503:
        return Unavailable(message, code=code, status=status, retry_after=retry_after(response))
    if status == 409 and code == "version_conflict":
        return VersionConflict(message, code=code, status=status)
    cls = _BY_STATUS.get(status, PiCloudError)
    return cls(message, code=code, status=status)


_HTTP_FALLBACK = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
    503: "unavailable",
}
