"""The dispatcher loop: wake on NOTIFY (or poll), claim, run with bounded concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

import aiohttp
import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram
from psycopg_pool import AsyncConnectionPool

from picloud.db import Row, connect_options
from picloud.dispatcher.handlers import Claimed, HandlerFailed, call_webhook, run_sql_handler
from picloud.queries import q
from picloud.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SEC = 5.0
LISTEN_RETRY_SEC = 1.0
PRUNE_EVERY_SEC = 600.0
# A handler gets at most this share of the lease, so it ends before the lease does.
LEASE_SHARE = 0.8


class DispatcherMetrics:
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
        self.metrics = DispatcherMetrics(registry or CollectorRegistry())
        self.kick = asyncio.Event()
        self.inflight: dict[int, asyncio.Task[None]] = {}
        self.batches = 0
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] | None = None
        self.session: aiohttp.ClientSession | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Dispatch until ``stopping`` is set, then finish or release what is in flight."""
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=min(self.concurrency, 10) + 1,
            open=False,
            kwargs={
                "row_factory": psycopg.rows.dict_row,
                "autocommit": True,
                "options": connect_options(self.settings),
            },
            connection_class=psycopg.AsyncConnection[Row],
            name="picloud-dispatcher",
        )
        await pool.open(wait=True, timeout=30)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        self.pool = pool
        self.session = aiohttp.ClientSession(connector=connector)
        listener = asyncio.create_task(self._listen(stopping), name="picloud-dispatch-listen")
        stop_waiter = asyncio.create_task(self._kick_on(stopping))
        try:
            await self._loop(stopping)
        finally:
            listener.cancel()
            stop_waiter.cancel()
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
        while not stopping.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, options=connect_options(self.settings)
                )
                async with conn:
                    await conn.execute(q("listen_dispatch"))
                    self.kick.set()  # anything enqueued while we were not listening
                    async for _ in conn.notifies():
                        self.kick.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dispatcher LISTEN connection lost (%s); reconnecting", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), LISTEN_RETRY_SEC)

    async def _loop(self, stopping: asyncio.Event) -> None:
        poll = self.settings.dispatch_poll_ms / 1000
        next_prune = time.monotonic()
        while not stopping.is_set():
            self.kick.clear()
            timeout = poll
            free = self.concurrency - len(self.inflight)
            # While handlers run, wait until a good share of slots is free: fewer, bigger
            # claims. An idle dispatcher claims at once.
            if free > 0 and (not self.inflight or free * 4 >= self.concurrency):
                try:
                    worker, batch = await self._claim(free)
                except psycopg.Error as exc:
                    log.warning("claiming deliveries failed: %s", exc)
                    worker, batch = "", []
                for d in batch:
                    self._start(d, worker)
                if len(batch) == free:
                    continue
                due = await self._seconds_until_due()
                if due is not None:
                    timeout = min(poll, max(due, 0.001))
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_SEC
                await self._prune()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kick.wait(), timeout)

    # -- SQL calls -------------------------------------------------------------------

    async def _one(self, query: str, params: dict[str, Any]) -> Row | None:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            return await (await conn.execute(q(query), params)).fetchone()

    async def _claim(self, n: int) -> tuple[str, list[Claimed]]:
        """Lease up to n deliveries under a worker name of their own: a delivery this
        process claims again after its lease ran out gets a new one, so a late finish of
        the first run is refused like any stale worker's."""
        assert self.pool is not None
        self.batches += 1
        worker = f"{self.node_id}#{self.batches}"
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    q("claim_deliveries"), {"worker": worker, "max": n, "lease": self.lease}
                )
            ).fetchall()
        return worker, [Claimed.from_row(r) for r in rows]

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

    # -- running one delivery --------------------------------------------------------

    def _start(self, d: Claimed, worker: str) -> None:
        task = asyncio.create_task(self._run_one(d, worker))
        self.inflight[d.id] = task

        def done(_: asyncio.Task[None]) -> None:
            self.inflight.pop(d.id, None)
            self.kick.set()

        task.add_done_callback(done)

    def _timeout_sec(self, d: Claimed) -> float:
        handler = (d.timeout_ms or 10000) / 1000
        return max(0.001, min(handler, self.settings.dispatch_lease_sec * LEASE_SHARE))

    async def _run_one(self, d: Claimed, worker: str) -> None:
        kind = d.handler_kind or "missing"
        started = time.perf_counter()
        finished = False
        try:
            try:
                timeout = self._timeout_sec(d)
                if d.handler_kind == "webhook":
                    assert self.session is not None
                    await call_webhook(self.session, d, timeout)
                    row = await self._one("complete_delivery", {"id": d.id, "worker": worker})
                    completed = bool(row and row["ok"])
                elif d.handler_kind == "sql":
                    assert self.pool is not None
                    completed = await run_sql_handler(
                        self.pool,
                        d,
                        worker,
                        int(timeout * 1000),
                        self.settings.sql_handler_schemas,
                    )
                else:
                    raise HandlerFailed("the handler no longer exists")
                finished = True
                outcome = "ok" if completed else "stale"
                if not completed:
                    log.warning("delivery %d: lease lost before completion", d.id)
            except HandlerFailed as exc:
                row = await self._one(
                    "fail_delivery", {"id": d.id, "worker": worker, "error": str(exc)}
                )
                finished = True
                outcome = row["outcome"] if row else "stale"
                log.info("delivery %d attempt %d failed (%s): %s", d.id, d.attempt, outcome, exc)
            self.metrics.deliveries.labels(kind, outcome).inc()
            self.metrics.seconds.labels(kind).observe(time.perf_counter() - started)
        except asyncio.CancelledError:
            if not finished:
                await asyncio.shield(self._release(d, worker))
            raise
        except Exception:
            # The database went away mid-delivery: the lease runs out and it runs again.
            log.exception("delivery %d: could not record the outcome", d.id)

    async def _release(self, d: Claimed, worker: str) -> None:
        try:
            await self._one("release_delivery", {"id": d.id, "worker": worker})
        except Exception as exc:
            log.warning("delivery %d: release failed (%s); its lease will run out", d.id, exc)
