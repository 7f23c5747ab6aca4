"""Counting the database round trips of one HTTP request to the in-process test server.

Every statement the server sends goes through ``psycopg.AsyncCursor.execute`` (or
``executemany`` / ``stream``); while ``recording()`` is active each call is noted with the
request id current in its task (picloud.logs.request_id, set by the error middleware), so
statements of background roles and of other requests are told apart. ``RoundTrips.call``
sends one request with its own X-Request-Id and returns the reply with the statements
that request ran.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from picloud import logs
from tests.fix_server import Api, Reply

_METHODS = ("execute", "executemany", "stream")


@dataclass
class Statements:
    by_request: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def note(self, query: Any) -> None:
        rid = logs.request_id.get()
        if rid is not None:
            self.by_request[rid].append(str(getattr(query, "as_string", lambda: query)()))


@contextlib.contextmanager
def recording() -> Iterator[Statements]:
    """Note every statement sent by an async cursor, by the request it was sent for."""
    seen = Statements()
    originals: dict[str, Callable[..., Any]] = {}
    for name in _METHODS:
        original = getattr(psycopg.AsyncCursor, name)
        originals[name] = original

        def noting(original: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(original)
            def wrapper(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
                seen.note(query)
                return original(self, query, *args, **kwargs)

            return wrapper

        setattr(psycopg.AsyncCursor, name, noting(original))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(psycopg.AsyncCursor, name, original)


_ids = itertools.count()


@dataclass
class RoundTrips:
    api: Api
    seen: Statements

    async def call(self, method: str, path: str, **kw: Any) -> tuple[Reply, list[str]]:
        """One request, and the statements the server ran for it."""
        rid = f"rt-{next(_ids)}"
        headers = {**kw.pop("headers", {}), "X-Request-Id": rid}
        reply = await self.api.call(method, path, headers=headers, **kw)
        assert reply.headers.get("X-Request-Id") == rid
        return reply, list(self.seen.by_request.get(rid, []))

    async def one(self, method: str, path: str, status: int, **kw: Any) -> Reply:
        """The request answers ``status`` after exactly one statement."""
        reply, statements = await self.call(method, path, **kw)
        assert reply.status == status, (method, path, reply.status, reply.raw[:300])
        assert len(statements) == 1, (method, path, status, statements)
        return reply

    async def refused(self, method: str, path: str, status: int, **kw: Any) -> Reply:
        """The request answers ``status`` after at most one statement (a malformed
        transport-level input, e.g. a query parameter that is not a number, needs none)."""
        reply, statements = await self.call(method, path, **kw)
        assert reply.status == status, (method, path, reply.status, reply.raw[:300])
        assert len(statements) <= 1, (method, path, status, statements)
        return reply


@pytest.fixture
def round_trips(api: Api) -> Iterator[RoundTrips]:
    with recording() as seen:
        yield RoundTrips(api, seen)
