"""Group commit of the publishes a node receives: one transaction, one NOTIFY per group.

Natural batching, no timer: a publish that arrives while no group is committing goes to
the database at once, alone; publishes that arrive while a group commits queue, and go
together as the next group as soon as it is done. So a lone publish waits for nothing,
and under load every commit (and its fsync, and PostgreSQL's serialised NOTIFY commit)
carries as many requests as arrived meanwhile, bounded by ``MAX_MESSAGES`` messages,
``MAX_BYTES`` of message text and ``MAX_REQUESTS`` requests (a larger request goes alone).

A group is one autocommit statement, ``picloud.publish_group``, which authorises (once
per distinct key) and validates each request by itself (a refused one is rolled back alone
and answered by its SQLSTATE); every request is answered when that statement returns, i.e.
after the group's commit. A group of one request, the lone publish, runs
``picloud.publish_one`` instead: scalar parameters, no subtransaction, and its refusal
comes back as the statement's error, with the SQLSTATE and message the group would
answer. Should the statement fail as a whole for another reason than the database being
unreachable (a deadlock with another node's group, an error no request's input
explains), each request of the group is tried again alone, so one request never fails
the others; a request whose text psycopg cannot send (a NUL character) always goes alone.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field

import psycopg
from prometheus_client import CollectorRegistry, Counter
from psycopg.rows import tuple_row
from psycopg_pool import PoolTimeout

from picloud.db import Pool
from picloud.queries import q
from picloud.web.errors import ApiError, refusal_of

log = logging.getLogger(__name__)

MAX_MESSAGES = 256
MAX_BYTES = 1 << 20
# Each request of a group is a subtransaction; PostgreSQL keeps up to 64 per backend in
# shared memory (beyond, every snapshot taken meanwhile must look up pg_subtrans).
MAX_REQUESTS = 64


@dataclass(frozen=True)
class Publish:
    """One publish request: with an API key (``key`` asking ``capability`` on ``app_id``,
    as picloud.authorize checks it) or, when ``host`` is set, with a subscriber token
    (``token``) on the app of that Host."""

    topic: str
    messages: str  # JSON text: one message when single, else a list of them
    single: bool = True
    count: int = 1  # messages in it
    key: str | None = None
    app_id: uuid.UUID | None = None
    capability: str | None = None
    host: str | None = None
    token: str | None = None

    def sendable(self) -> bool:
        """Whether psycopg can send its text (PostgreSQL text holds no NUL character)."""
        texts = (self.topic, self.messages, self.key, self.capability, self.host, self.token)
        return not any(t is not None and "\x00" in t for t in texts)


@dataclass(frozen=True)
class Outcome:
    """A request's answer: published (``error_state`` None; ``ids`` of its messages, in
    order), or refused with a SQLSTATE and its message."""

    error_state: str | None
    error_message: str | None
    ids: list[int] | None
    published_at: str | None

    def refusal(self) -> ApiError:
        """The HTTP error of a refused request (the same map as any SQL refusal)."""
        state, text = self.error_state or "", self.error_message or "refused"
        return refusal_of(state, text) or ApiError(400, "invalid_input", text)


@dataclass
class _Waiting:
    request: Publish
    answer: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # The request's context (its request id, app): its group's statement runs in the
    # context of the group's first request, so it is counted and logged for that one.
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


class PublishGroups:
    """A node's publish queue and its one committing group."""

    def __init__(
        self,
        pool: Pool,
        registry: CollectorRegistry | None = None,
        *,
        max_messages: int = MAX_MESSAGES,
        max_bytes: int = MAX_BYTES,
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        self._pool = pool
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._max_requests = max_requests
        self._queue: deque[_Waiting] = deque()
        self._committer: asyncio.Task[None] | None = None
        self.committing: list[Publish] = []  # the group in flight (for tests)
        self.groups = Counter(
            "picloud_publish_groups",
            "Publish groups committed (one transaction and at most one NOTIFY each)",
            registry=registry,
        )
        self.requests = Counter(
            "picloud_publish_group_requests",
            "Publish requests committed in groups (requests / groups = mean group size)",
            registry=registry,
        )

    @property
    def queued(self) -> int:
        """Requests waiting for the next group."""
        return len(self._queue)

    async def publish(self, request: Publish) -> Outcome:
        """Publish with the next group; its outcome once that group has committed."""
        waiting = _Waiting(request)
        self._queue.append(waiting)
        if self._committer is None:
            # Nothing is committing: this request goes now (the task starts on the next
            # turn of the event loop, with whatever else arrived in this one). Its own
            # context is empty: it serves many requests.
            self._committer = asyncio.create_task(
                self._commit_all(), name="publish-groups", context=contextvars.Context()
            )
        # A request cancelled meanwhile (its client went away) is still published.
        return await waiting.answer

    async def _commit_all(self) -> None:
        try:
            while self._queue:
                await self._commit(self._take())
        except BaseException:
            while self._queue:  # (the loop is stopping, or a bug) nobody will send these
                self._queue.popleft().answer.cancel()
            raise
        finally:
            self._committer = None
            self.committing = []

    def _take(self) -> list[_Waiting]:
        """The next group: the oldest requests, within the bounds (at least one)."""
        group = [self._queue.popleft()]
        messages, size = group[0].request.count, len(group[0].request.messages)
        while self._queue and len(group) < self._max_requests:
            nxt = self._queue[0].request
            messages += nxt.count
            size += len(nxt.messages)
            if messages > self._max_messages or size > self._max_bytes:
                break
            group.append(self._queue.popleft())
        return group

    async def _commit(self, group: list[_Waiting]) -> None:
        unsendable = [w for w in group if not w.request.sendable()]
        if unsendable:
            group = [w for w in group if w.request.sendable()]
            for w in unsendable:  # alone: psycopg refuses the text (400 for its request)
                await self._answer([w])
        if group:
            await self._answer(group)

    async def _answer(self, group: list[_Waiting]) -> None:
        self.committing = [w.request for w in group]
        for var, value in group[0].context.items():  # (the committer's context is its own)
            var.set(value)
        try:
            outcomes = await self._statement([w.request for w in group])
        except PoolTimeout as exc:
            self._fail(group, exc)  # the database is away: every request answers 503
            return
        except psycopg.Error as exc:
            # Class 40 (a deadlock, a serialization failure): try again; other
            # operational errors: the database is away.
            away = isinstance(exc, psycopg.OperationalError) and not (
                exc.sqlstate or ""
            ).startswith("40")
            if len(group) == 1 or away:
                self._fail(group, exc)
                return
            log.warning("publish group of %d failed (%s); publishing one by one", len(group), exc)
            for w in group:
                await self._answer([w])
            return
        except BaseException as exc:
            self._fail(group, exc)
            raise
        self.groups.inc()
        self.requests.inc(len(group))
        for w, outcome in zip(group, outcomes, strict=True):
            if not w.answer.done():
                w.answer.set_result(outcome)

    @staticmethod
    def _fail(group: list[_Waiting], exc: BaseException) -> None:
        for w in group:
            if not w.answer.done():
                if isinstance(exc, asyncio.CancelledError):
                    w.answer.cancel()
                else:
                    w.answer.set_exception(exc)

    async def _statement(self, reqs: list[Publish]) -> list[Outcome]:
        if len(reqs) == 1:
            return [await self._alone(reqs[0])]
        params = {
            "keys": [r.key for r in reqs],
            "app_ids": [r.app_id for r in reqs],
            "capabilities": [r.capability for r in reqs],
            "hosts": [r.host for r in reqs],
            "tokens": [r.token for r in reqs],
            "topics": [r.topic for r in reqs],
            "messages": [r.messages for r in reqs],
            "singles": [r.single for r in reqs],
        }
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            rows = await (await cur.execute(q("publish_group"), params, binary=True)).fetchall()
        # (i, error_state, error_message, ids, published_at), in the statement's order
        by_index = {row[0]: row for row in rows}
        return [Outcome(*by_index[i][1:]) for i in range(1, len(reqs) + 1)]

    async def _alone(self, r: Publish) -> Outcome:
        """A group of one: picloud.publish_one, whose refusal is the statement's error."""
        params = {
            "key": r.key,
            "app_id": r.app_id,
            "capability": r.capability,
            "host": r.host,
            "token": r.token,
            "topic": r.topic,
            "messages": r.messages,
            "single": r.single,
        }
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            try:
                await cur.execute(q("publish_one"), params)
            except psycopg.Error as exc:
                state = exc.sqlstate or ""
                if refusal_of(state, None) is None:  # not a refusal of this request's input
                    raise
                return Outcome(state, exc.diag.message_primary, None, None)
            row = await cur.fetchone()
        assert row is not None
        return Outcome(None, None, row[0], row[1])
