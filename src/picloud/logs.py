"""Logging for every entry point: plain text, or one JSON object per line
(``PICLOUD_LOG_FORMAT=json``) carrying the request id and app id where known.

The ids live in ContextVars, so whatever runs inside a request (or a delivery) logs with
them without passing them around: ``with log_context(request_id=..., app_id=...)``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "picloud_request_id", default=None
)
app_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("picloud_app_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO lines say nothing an operator needs.
QUIET = ("pgserver", "pgmigrate", "psycopg.pool", "aiohttp.access")


@contextlib.contextmanager
def log_context(*, request: str | None = None, app: object | None = None) -> Iterator[None]:
    """Log lines inside carry this request id and/or app id."""
    tokens: list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]] = []
    if request is not None:
        tokens.append((request_id, request_id.set(request)))
    if app is not None:
        tokens.append((app_id, app_id.set(str(app))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, app_id."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        aid = getattr(record, "app_id", None) or app_id.get()
        if rid is not None:
            entry["request_id"] = str(rid)
        if aid is not None:
            entry["app_id"] = str(aid)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: int, fmt: str = "text") -> None:
    """Send log records at ``level`` and above to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
