"""The dispatcher loop: wake on NOTIFY (or poll), claim, run with bounded concurrency."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

import aiohttp
import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from picloud.db import Pool, Row, application_name, connect_options
from picloud.dispatcher.egress import guarded_connector
from picloud.dispatcher.handlers import (
    BatchOutcome,
    Claimed,
    HandlerFailed,
    call_webhook,
    run_sql_batch,
)
from picloud.node import pause
from picloud.queries import q
from picloud.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SEC = 5.0
LISTEN_RETRY_SEC = 1.0
RELOOK_SEC = 0.001
MIN_WAIT_SEC = 0.01
PRUNE_EVERY_SEC = 600.0
# A handler gets at most this share of the lease, so it ends before the lease does.
LEASE_SHARE = 0.8
# Leased SQL handlers run together in one call of picloud.run_sql_deliveries (at most 64
# subtransactions, so a batch of writing handlers never overflows PostgreSQL's per-backend
# subtransaction cache).
SQL_GROUP = 16
# Claims in flight at once (each in its own database session).
CLAIM_LANES = 2
# SQL handlers whose timeout is at least this long run inside the claim, whose statement
# timeout it is; at most a quarter of the lease, as the claim's leases start with it.
INLINE_SQL_MAX_MS = 5000
LEASE_FRACTION_INLINE = 4


class DispatcherMetrics:
    """The dispatcher's Prometheus metrics, made once per registry (a restarted role, or
    several dispatchers in one process, share them)."""

    _made: weakref.WeakKeyDictionary[CollectorRegistry, DispatcherMetrics] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> DispatcherMetrics:
        if registry not in cls._made:
            cls._made[registry] = cls(registry)
        return cls._made[registry]

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "picloud_dispatcher_deliveries",
            "Deliveries run by this dispatcher, by handler kind and outcome",
            ["kind", "outcome"],
            registry=registry,
        )
        self.seconds = Histogram(
            "picloud_dispatcher_handler_seconds",
            "Time a handler took, by kind",
            ["kind"],
            registry=registry,
        )


class Completer:
    """Records webhook outcomes in batches: every completion or failure asked for while one
    batch is in the database goes into the next (``picloud.finish_deliveries``, one round
    trip), so a busy dispatcher makes few round trips and an idle one waits for nobody."""

    MAX_BATCH = 256

    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]]) -> None:
        self.pool = pool
        self.waiting: list[tuple[uuid.UUID, int, str, str | None, asyncio.Future[str]]] = []
        self.flusher: asyncio.Task[None] | None = None

    async def complete(self, app_id: uuid.UUID, delivery_id: int, worker: str) -> bool:
        """Mark it done; False when the lease was lost."""
        return await self._record(app_id, delivery_id, worker, None) == "ok"

    async def fail(self, app_id: uuid.UUID, delivery_id: int, worker: str, error: str) -> str:
        """Record a failed attempt: ``retry``, ``dead`` or ``stale`` (as fail_delivery)."""
        return await self._record(app_id, delivery_id, worker, error)

    async def _record(
        self, app_id: uuid.UUID, delivery_id: int, worker: str, error: str | None
    ) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waiting.append((app_id, delivery_id, worker, error, future))
        if self.flusher is None:
            self.flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self.waiting:
                batch = self.waiting[: self.MAX_BATCH]
                del self.waiting[: self.MAX_BATCH]
                try:
                    async with self.pool.connection() as conn:
                        rows = await (
                            await conn.execute(
                                q("finish_deliveries"),
                                {
                                    "app_ids": [b[0] for b in batch],
                                    "ids": [b[1] for b in batch],
                                    "workers": [b[2] for b in batch],
                                    "errors": [b[3] for b in batch],
                                },
                            )
                        ).fetchall()
                except Exception as exc:
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                outcomes = {row["id"]: str(row["outcome"]) for row in rows}
                for _, delivery_id, _, _, future in batch:
                    if not future.done():
                        future.set_result(outcomes.get(delivery_id, "stale"))
        finally:
            self.flusher = None


class Dispatcher:
    """Claims deliveries for ``node_id`` and runs up to ``concurrency`` handlers at once."""

    def __init__(
        self,
        settings: Settings,
        conninfo: str,
        node_id: str,
        registry: CollectorRegistry | None = None,
        *,
        shutdown_grace_sec: float = SHUTDOWN_GRACE_SEC,
    ) -> None:
        self.shutdown_grace_sec = shutdown_grace_sec
        self.settings = settings
        self.conninfo = conninfo
        self.node_id = node_id
        self.concurrency = settings.dispatch_concurrency
        self.lease = timedelta(seconds=settings.dispatch_lease_sec)
        self.metrics = DispatcherMetrics.of(registry or CollectorRegistry())
        self.kick = asyncio.Event()
        self.inflight: dict[int, asyncio.Task[None]] = {}
        self.batches = 0
        # Claims in flight, the handler slots they may lease, whether the last one found a
        # full batch and ran SQL handlers, and whether a look was asked for that no claim
        # has answered yet. A claim locks up to ``concurrency`` rows.
        self.claims: set[asyncio.Task[None]] = set()
        self.reserved = 0
        self.backlog = False
        self.look = False
        self.ran_sql = False
        self.recheck_at: float | None = None
        self.run_within_ms = max(
            1, min(INLINE_SQL_MAX_MS, settings.dispatch_lease_sec * 1000 // LEASE_FRACTION_INLINE)
        )
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] | None = None
        self.completer: Completer | None = None
        self.session: aiohttp.ClientSession | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Dispatch until ``stopping`` is set, then finish or release what is in flight."""
        # (db.Pool: psycopg's pool with the server's capped reconnect back-off.)
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = Pool(
            self.conninfo,
            min_size=1,
            max_size=min(self.concurrency, 10) + 1,
            open=False,
            kwargs={
                "row_factory": psycopg.rows.dict_row,
                "autocommit": True,
                "options": connect_options(self.settings),
                "application_name": application_name("dispatcher", self.node_id),
            },
            connection_class=psycopg.AsyncConnection[Row],
            name="picloud-dispatcher",
        )
        await pool.open(wait=True, timeout=30)
        connector = guarded_connector(self.settings.webhook_allowed_networks, self.concurrency)
        self.pool = pool
        self.completer = Completer(pool)
        self.session = aiohttp.ClientSession(connector=connector)
        listener = asyncio.create_task(self._listen(stopping), name="picloud-dispatch-listen")
        stop_waiter = asyncio.create_task(self._kick_on(stopping))
        try:
            await self._loop(stopping)
        finally:
            listener.cancel()
            stop_waiter.cancel()
            # Claims end within their statement timeout; what they leased is drained next.
            await asyncio.gather(*self.claims, return_exceptions=True)
            await self._drain()
            await asyncio.gather(listener, stop_waiter, return_exceptions=True)
            await self.session.close()
            await pool.close()
            self.pool = None

    async def _kick_on(self, stopping: asyncio.Event) -> None:
        await stopping.wait()
        self.kick.set()

    async def _drain(self) -> None:
        """Let running handlers finish for a while, then cancel them (their leases are
        released, so another dispatcher runs them at once)."""
        if not self.inflight:
            return
        _, pending = await asyncio.wait(
            list(self.inflight.values()), timeout=self.shutdown_grace_sec
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- waking up -------------------------------------------------------------------

    async def _listen(self, stopping: asyncio.Event) -> None:
        """A dedicated LISTEN connection; on every notification, kick the loop."""
        settle: asyncio.Task[None] | None = None
        while not stopping.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo,
                    autocommit=True,
                    options=connect_options(self.settings),
                    application_name=application_name("dispatcher-listen", self.node_id),
                )
                async with conn:
                    await conn.execute(q("listen_dispatch"))
                    self._look()  # anything enqueued while we were not listening
                    async for _ in conn.notifies():
                        self._look()
                        if settle is None or settle.done():
                            settle = asyncio.create_task(self._look_while_committing())
            except asyncio.CancelledError:
                if settle is not None:
                    settle.cancel()
                raise
            except Exception as exc:
                log.warning("dispatcher LISTEN connection lost (%s); reconnecting", exc)
                await pause(stopping, LISTEN_RETRY_SEC)

    async def _look_while_committing(self) -> None:
        """At most one committing enqueue carries the NOTIFY (sql/29_wakeups.sql): others
        may commit just after it without one. Look again every ``RELOOK_SEC`` while some
        enqueue is committing; the question comes before the claim it asks for, so the
        claim after a "no" sees every enqueue that committed silently before it."""
        try:
            while True:
                row = await self._one("dispatch_committing", {})
                self._look()
                if row is None or not row["busy"]:
                    return
                await asyncio.sleep(RELOOK_SEC)
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("could not ask for committing enqueues (%s)", exc)  # polling covers

    def _look(self) -> None:
        """Ask the loop to look for due deliveries (a NOTIFY, a handler slot freed, a full
        claim). A bare ``kick`` only wakes it to recompute how long to sleep."""
        self.look = True
        self.kick.set()

    async def _loop(self, stopping: asyncio.Event) -> None:
        poll = self.settings.dispatch_poll_ms / 1000
        next_prune = time.monotonic()
        self.look = True
        while not stopping.is_set():
            self.kick.clear()
            self._claim_more()
            timeout = poll
            if self.recheck_at is not None:
                timeout = min(poll, max(self.recheck_at - time.monotonic(), MIN_WAIT_SEC))
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_SEC
                await self._prune()
            try:
                await asyncio.wait_for(self.kick.wait(), timeout)
            except TimeoutError:
                self.look = True  # the polling fallback, or a retry or lease falling due

    def _claim_more(self) -> None:
        """Start claims: one when asked to look and none runs, a second beside it while
        the last claim found a full batch (each claim runs its SQL handlers in a database
        session of its own, so two use two cores). A claim leases at most the free handler
        slots; while handlers run it waits for a good share of them (fewer, bigger claims),
        and with none free it claims only to run SQL handlers during a backlog."""
        while len(self.claims) < CLAIM_LANES and (self.backlog or not self.claims):
            free = self.concurrency - len(self.inflight) - self.reserved
            busy = bool(self.inflight or self.reserved)
            leasable = free if free > 0 and (not busy or free * 4 >= self.concurrency) else 0
            # Without slots to lease, a claim is worth it only to run SQL handlers.
            if not (leasable > 0 and (self.look or self.backlog)) and not (
                self.backlog and self.ran_sql
            ):
                return
            self.look = False
            self.recheck_at = None
            self.reserved += leasable
            task = asyncio.create_task(self._claim_and_start(leasable))
            self.claims.add(task)

            def claimed(task: asyncio.Task[None], leasable: int = leasable) -> None:
                self.claims.discard(task)
                self.reserved -= leasable
                if self.backlog or self.look:  # more is due, or a look was asked meanwhile
                    self._look()

            task.add_done_callback(claimed)

    async def _claim_and_start(self, leasable: int) -> None:
        """One claim: SQL handlers run within it, the rest start here as tasks."""
        started = time.perf_counter()
        try:
            worker, rows, full = await self._claim(leasable)
        except Exception as exc:
            log.warning("claiming deliveries failed: %s", exc)
            self.backlog = False
            return
        leased: list[Claimed] = []
        for row in rows:
            if row.get("outcome") is None:
                leased.append(Claimed.from_row(row))
            else:  # an SQL handler run within the claim
                self._log_outcome_of(row["id"], row["attempt"], row["outcome"], row["error"])
                self._count("sql", row["outcome"], started)
        self._start_batch(leased, worker)
        self.backlog = full
        self.ran_sql = len(leased) < len(rows)
        if not full:
            due = await self._seconds_until_due()
            if due is not None:
                # A retry or an expiring lease, or rows due now that another claimer still
                # holds: look again then (or shortly) rather than spin; wake the loop so
                # that it sleeps only that long.
                self.recheck_at = time.monotonic() + due
                self.kick.set()

    # -- SQL calls -------------------------------------------------------------------

    async def _one(self, query: str, params: dict[str, Any]) -> Row | None:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            return await (await conn.execute(q(query), params)).fetchone()

    async def _claim(self, leasable: int) -> tuple[str, list[Row], bool]:
        """Claim under a worker name of its own (a delivery this process claims again after
        its lease ran out gets a new one, so a late finish of the first run is refused like
        any stale worker's): ``picloud.claim_deliveries`` with ``run_within_ms``, which
        runs the SQL handlers it can on the spot and leases up to ``leasable`` others. When
        that call fails (an SQL handler ran into the statement timeout, say), nothing was
        claimed, and the same function only leases instead, so those handlers run in
        batches under their own timeouts. Returns the worker, the rows, and whether the
        batch was full (more may be due)."""
        assert self.pool is not None
        self.batches += 1
        worker = f"{self.node_id}#{self.batches}"
        params = {
            "worker": worker,
            # After a batch without SQL handlers, lock no more than can be leased.
            "max": self.concurrency if (self.ran_sql or leasable == 0) else leasable,
            "lease": self.lease,
            "run_within_ms": self.run_within_ms,
            "max_leased": leasable,
        }
        async with self.pool.connection() as conn:
            cur = psycopg.AsyncClientCursor(conn)
            try:
                await cur.execute(q("claim_and_run_deliveries"), params)
                # BEGIN, SET, the SELECT's rows, COMMIT: find the rows.
                while cur.description is None and cur.nextset():
                    pass
                rows = await cur.fetchall()
                leased = sum(1 for r in rows if r["outcome"] is None)
                return worker, rows, len(rows) == self.concurrency or 0 < leasable == leased
            except psycopg.Error as exc:
                if conn.broken:
                    raise
                await conn.rollback()
                log.info("claiming with SQL handlers failed (%s); claiming with leases", exc)
            if leasable == 0:
                return worker, [], False
            rows = await (
                await conn.execute(
                    q("claim_deliveries"), {"worker": worker, "max": leasable, "lease": self.lease}
                )
            ).fetchall()
        return worker, rows, len(rows) == leasable

    async def _seconds_until_due(self) -> float | None:
        try:
            row = await self._one("next_delivery_due", {})
        except psycopg.Error:
            return None
        if row is None or row["seconds"] is None:
            return None
        return float(row["seconds"])

    async def _prune(self) -> None:
        older = timedelta(seconds=self.settings.dispatch_retention_sec)
        try:
            row = await self._one("prune_deliveries", {"older_than": older})
        except psycopg.Error as exc:
            log.warning("pruning deliveries failed: %s", exc)
            return
        if row and row["pruned"]:
            log.info("pruned %d finished deliveries", row["pruned"])

    # -- running deliveries ----------------------------------------------------------

    def _start_batch(self, batch: list[Claimed], worker: str) -> None:
        """Webhooks run one per task; SQL handlers in groups of up to SQL_GROUP per task
        (one connection, several runs per round trip)."""
        group: list[Claimed] = []
        for d in batch:
            if d.handler_kind == "sql":
                group.append(d)
                if len(group) == SQL_GROUP:
                    self._start(group, self._run_sql(group, worker))
                    group = []
            else:
                self._start([d], self._run_one(d, worker))
        if group:
            self._start(group, self._run_sql(group, worker))

    def _start(self, ds: list[Claimed], work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        for d in ds:
            self.inflight[d.id] = task

        def done(_: asyncio.Task[None]) -> None:
            for d in ds:
                self.inflight.pop(d.id, None)
            self._look()

        task.add_done_callback(done)

    def _timeout_sec(self, d: Claimed) -> float:
        handler = (d.timeout_ms or 10000) / 1000
        return max(0.001, min(handler, self.settings.dispatch_lease_sec * LEASE_SHARE))

    def _count(self, kind: str, outcome: str, started: float) -> None:
        self.metrics.deliveries.labels(kind, outcome).inc()
        self.metrics.seconds.labels(kind).observe(time.perf_counter() - started)

    async def _run_sql(self, ds: list[Claimed], worker: str) -> None:
        """Run a batch of SQL handlers in one call (picloud.run_sql_deliveries), under the
        smallest timeout of the batch; when that call does not commit (a handler ran into
        the timeout), run each alone under its own timeout, so the slow one is identified
        and the others still complete. One that does not commit alone has failed."""
        started = time.perf_counter()
        recorded: set[int] = set()
        try:
            assert self.pool is not None and self.completer is not None
            timeout_ms = min(int(self._timeout_sec(d) * 1000) for d in ds)
            try:
                batch = await run_sql_batch(self.pool, ds, worker, timeout_ms)
            except HandlerFailed as exc:
                if len(ds) > 1:
                    log.info(
                        "SQL handler batch of %d did not commit (%s); one by one", len(ds), exc
                    )
                    for d in ds:
                        await self._run_sql([d], worker)
                        recorded.add(d.id)
                    return
                [d] = ds
                outcome = await self.completer.fail(d.app_id, d.id, worker, str(exc))
                recorded.add(d.id)
                self._log_outcome(d, outcome, str(exc))
                self._count("sql", outcome, started)
                return
            recorded.update(batch)
            for d in ds:
                result = batch.get(d.id, BatchOutcome("stale", None))
                self._log_outcome(d, result.outcome, result.error)
                self._count("sql", result.outcome, started)
        except asyncio.CancelledError:
            await asyncio.shield(self._release_all([d for d in ds if d.id not in recorded], worker))
            raise
        except Exception:
            # The database went away mid-delivery: the leases run out and they run again.
            log.exception("deliveries %s: could not record the outcome", [d.id for d in ds])

    @classmethod
    def _log_outcome(cls, d: Claimed, outcome: str, error: str | None) -> None:
        cls._log_outcome_of(d.id, d.attempt, outcome, error)

    @staticmethod
    def _log_outcome_of(
        delivery_id: int, attempt: int | None, outcome: str, error: str | None
    ) -> None:
        if outcome == "stale":
            log.warning("delivery %d: lease lost before completion", delivery_id)
        elif outcome != "ok":
            log.info("delivery %d attempt %s failed (%s): %s", delivery_id, attempt, outcome, error)

    async def _run_one(self, d: Claimed, worker: str) -> None:
        kind = d.handler_kind or "missing"
        started = time.perf_counter()
        finished = False
        try:
            try:
                if d.handler_kind != "webhook":
                    raise HandlerFailed("the handler no longer exists")
                assert self.session is not None
                await call_webhook(self.session, d, self._timeout_sec(d))
                assert self.completer is not None
                completed = await self.completer.complete(d.app_id, d.id, worker)
                finished = True
                outcome = "ok" if completed else "stale"
                if outcome == "stale":
                    log.warning("delivery %d: lease lost before completion", d.id)
            except HandlerFailed as exc:
                assert self.completer is not None
                outcome = await self.completer.fail(d.app_id, d.id, worker, str(exc))
                finished = True
                self._log_outcome(d, outcome, str(exc))
            self._count(kind, outcome, started)
        except asyncio.CancelledError:
            if not finished:
                await asyncio.shield(self._release_all([d], worker))
            raise
        except Exception:
            # The database went away mid-delivery: the lease runs out and it runs again.
            log.exception("delivery %d: could not record the outcome", d.id)

    async def _release_all(self, ds: list[Claimed], worker: str) -> None:
        for d in ds:
            try:
                await self._one("release_delivery", {"id": d.id, "worker": worker})
            except Exception as exc:
                log.warning("delivery %d: release failed (%s); its lease will run out", d.id, exc)
