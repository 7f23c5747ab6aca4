"""The start-up check of the database: reach it within PICLOUD_DB_CONNECT_TIMEOUT_SEC or stop
with one line naming DATABASE_URL (password masked) and the server's reason.

Every entry point that needs the database (``picloud serve``, ``picloud dispatcher`` and the
admin commands) calls ``wait_for_database`` first, so a bad URL never ends in a traceback or a
pool timeout half a minute later.
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse

import psycopg

from picloud.settings import Settings

log = logging.getLogger(__name__)

# With PICLOUD_DB_CONNECT_TIMEOUT_SEC=0 (wait for ever) a line is logged this often.
WAIT_LOG_INTERVAL_SEC = 5.0
RETRY_INTERVAL_SEC = 0.5


class DatabaseUnreachable(Exception):
    """The database could not be reached in time; the message is the one line to print."""


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (URL or key=value form)."""
    if url.startswith(("postgres://", "postgresql://")):
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostinfo = netloc.rpartition("@")
            user, sep, _password = userinfo.partition(":")
            netloc = f"{user}:***@{hostinfo}" if sep else netloc
        query = re.sub(r"(^|&)password=[^&]*", r"\1password=***", parts.query)
        # By hand: urlunsplit drops the empty host of postgresql:///db?host=/socket.
        return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
    return re.sub(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", "password=***", url)


def reason(exc: psycopg.OperationalError) -> str:
    """The server's (or libpq's) reason from a failed connect, on one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libpq: 'connection failed: connection to server at "h", port p failed: <reason>'.
    text = text.rsplit(" failed: ", 1)[-1]
    return re.sub(r"^(FATAL|ERROR):\s+", "", text).strip() or "unknown error"


def describe(url: str, settings: Settings) -> str:
    if settings.database_url:  # as the operator wrote it (url may carry application_name)
        return f"DATABASE_URL={mask_url(settings.database_url)}"
    return f"the embedded database ({mask_url(url)}; DATABASE_URL is not set)"


def wait_for_database(url: str, settings: Settings) -> None:
    """Return once a connection to ``url`` succeeds; raise DatabaseUnreachable when none did
    within ``settings.db_connect_timeout_sec`` (0: keep trying, logging now and then)."""
    limit = settings.db_connect_timeout_sec
    deadline = time.monotonic() + limit if limit > 0 else None
    next_log = time.monotonic()  # waiting for ever: say so at once, then now and then
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        # libpq's connect_timeout is whole seconds, at least 2 (smaller values become 2).
        attempt = 5 if remaining is None else max(2, int(remaining + 0.999))
        try:
            with psycopg.connect(url, connect_timeout=attempt, autocommit=True):
                return
        except psycopg.OperationalError as exc:
            why = reason(exc)
        now = time.monotonic()
        if deadline is not None and now + RETRY_INTERVAL_SEC >= deadline:
            raise DatabaseUnreachable(
                f"cannot connect to {describe(url, settings)} within {limit:g} s: {why}"
            )
        if deadline is None and now >= next_log:
            log.warning("waiting for %s: %s", describe(url, settings), why)
            next_log = now + WAIT_LOG_INTERVAL_SEC
        time.sleep(RETRY_INTERVAL_SEC)
