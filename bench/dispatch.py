"""Dispatcher throughput and latency on the embedded PostgreSQL; prints JSON.

    python bench/dispatch.py [--n 10000] [--latency-n 200] [--rate 20] [--peer-n 2000]

Figures, from one run:
- drain rate (deliveries/s, from the commit that enqueued them to the last completion) of
  n deliveries enqueued in one transaction, with a no-op SQL handler, and with a webhook
  handler answered by a loopback receiver in another process;
- enqueue -> handler-start latency (p50/p99, ms) of single deliveries enqueued at --rate
  per second into an idle dispatcher (enqueue = the enqueuing transaction's start, handler
  start = clock_timestamp() inside the SQL handler: both read from the database clock);
- a raw claim loop on the same database as the reference (UPDATE ... WHERE (app_id, id) IN
  (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING, then DELETE), and each drain
  rate as a fraction of it;
- the same loop through picloud.claim_deliveries and finish_deliveries, without handlers:
  what the SQL API itself (leases, attempt records, reclaiming) costs next to the raw loop;
- procrastinate (when installed) draining --peer-n no-op jobs deferred in one batch, in a database
  of its own on the same server, with a worker of the dispatcher's concurrency: a peer
  task queue on PostgreSQL, and the SQL drain as a multiple of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
from aiohttp import web
from psycopg.rows import dict_row

from picloud.dispatcher import Dispatcher
from picloud.embedded import embedded_postgres
from picloud.migrate import migrate
from picloud.queries import parse_queries
from picloud.settings import Settings

QUERIES = parse_queries((Path(__file__).with_suffix(".sql")).read_text())
Conn = psycopg.AsyncConnection[dict[str, Any]]


def q(name: str) -> str:
    return QUERIES[name]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_receiver(port: int) -> None:
    """The loopback webhook endpoint (its own process, so it has its own core)."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


@contextlib.contextmanager
def receiver_process(port: int) -> Any:
    proc = subprocess.Popen([sys.executable, __file__, "--receiver", str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.asynccontextmanager
async def dispatcher(settings: Settings, uri: str) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(Dispatcher(settings, uri, "bench").run(stopping))
    await asyncio.sleep(0.5)  # pool open, LISTEN in place, idle
    try:
        yield
    finally:
        stopping.set()
        await task


async def scalar(conn: Conn, query: str, **params: Any) -> Any:
    row = await (await conn.execute(q(query), params)).fetchone()
    assert row is not None
    return next(iter(row.values()))


async def wait_drained(conn: Conn) -> None:
    """Poll (every 20 ms, through the partial indexes) until nothing is queued."""
    while await scalar(conn, "count_not_done"):  # noqa: ASYNC110 - the database has no event
        await asyncio.sleep(0.02)


async def drain_rate(
    conn: Conn, settings: Settings, uri: str, app_id: Any, prefix: str, n: int
) -> dict[str, float]:
    await conn.execute(q("reset"))
    async with dispatcher(settings, uri):
        started = time.perf_counter()
        enqueued = await scalar(conn, "enqueue_many", app_id=app_id, prefix=prefix, n=n)
        committed = time.perf_counter()  # autocommit: nothing was visible before this
        assert enqueued == n, enqueued
        await wait_drained(conn)
        elapsed = time.perf_counter() - committed
    return {
        "deliveries": n,
        "seconds": round(elapsed, 3),
        "per_sec": round(n / elapsed, 1),
        "enqueue_seconds": round(committed - started, 3),
    }


async def latency(
    conn: Conn, settings: Settings, uri: str, app_id: Any, n: int, rate: float
) -> dict[str, float]:
    await conn.execute(q("reset"))
    async with dispatcher(settings, uri):
        t0 = time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            await conn.execute(q("enqueue_one"), {"app_id": app_id, "key": f"lat:{i}"})
        await wait_drained(conn)
    rows = await (await conn.execute(q("latencies_ms"))).fetchall()
    values = sorted(float(r["ms"]) for r in rows)
    assert len(values) == n, len(values)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "deliveries": n,
        "rate_per_sec": rate,
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(cuts[98], 2),
        "max_ms": round(values[-1], 2),
    }


async def claim_loop_rate(
    conn: Conn, app_id: Any, n: int, batch: int, claim: str, finish: str
) -> dict[str, float]:
    """One connection claiming ``batch`` rows at a time and finishing them, no handlers."""
    await conn.execute(q("reset"))
    await scalar(conn, "enqueue_many", app_id=app_id, prefix="sql:", n=n)
    started = time.perf_counter()
    done = 0
    while True:
        rows = await (await conn.execute(q(claim), {"n": batch})).fetchall()
        if not rows:
            break
        await conn.execute(
            q(finish), {"app_ids": [r["app_id"] for r in rows], "ids": [r["id"] for r in rows]}
        )
        done += len(rows)
    elapsed = time.perf_counter() - started
    assert done == n, done
    return {
        "deliveries": n,
        "batch": batch,
        "seconds": round(elapsed, 3),
        "per_sec": round(n / elapsed, 1),
    }


async def procrastinate_rate(uri: str, n: int, concurrency: int) -> dict[str, float] | None:
    """Drain rate of n no-op procrastinate jobs (None when procrastinate is not installed)."""
    try:
        import procrastinate
    except ImportError:
        return None
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        await conn.execute("DROP DATABASE IF EXISTS bench_procrastinate")
        await conn.execute("CREATE DATABASE bench_procrastinate")
    peer_uri = psycopg.conninfo.make_conninfo(uri, dbname="bench_procrastinate")
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=peer_uri))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        started = time.perf_counter()
        await noop.batch_defer_async(*[{} for _ in range(n)])
        committed = time.perf_counter()
        await app.run_worker_async(
            concurrency=concurrency, wait=False, install_signal_handlers=False, delete_jobs="never"
        )
        elapsed = time.perf_counter() - committed
    return {
        "deliveries": n,
        "seconds": round(elapsed, 3),
        "per_sec": round(n / elapsed, 1),
        "enqueue_seconds": round(committed - started, 3),
        "version": procrastinate.__version__,
    }


async def bench(args: argparse.Namespace, uri: str, hook_url: str) -> dict[str, Any]:
    # The receiver is on loopback, which the webhook egress guard blocks unless allowed.
    settings = Settings(
        database_url=uri, webhook_allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    async with await psycopg.AsyncConnection.connect(
        uri, autocommit=True, row_factory=dict_row
    ) as conn:
        app_id = await scalar(conn, "make_app", slug="bench")
        await conn.execute(q("make_noop_function"))
        noop = await scalar(
            conn, "make_sql_handler", app_id=app_id, name="noop", function="picloud_handlers.noop"
        )
        stamp = await scalar(
            conn, "make_sql_handler", app_id=app_id, name="stamp", function="picloud_handlers.stamp"
        )
        hook = await scalar(conn, "make_webhook_handler", app_id=app_id, name="hook", url=hook_url)
        for name, match, handler in (
            ("sql", "sql:*", noop),
            ("hook", "hook:*", hook),
            ("lat", "lat:*", stamp),
        ):
            await conn.execute(
                q("make_trigger"),
                {"app_id": app_id, "name": name, "match": match, "handler_id": handler},
            )

        sql_drain = await drain_rate(conn, settings, uri, app_id, "sql:", args.n)
        hook_drain = await drain_rate(conn, settings, uri, app_id, "hook:", args.n)
        lat = await latency(conn, settings, uri, app_id, args.latency_n, args.rate)
        batch = settings.dispatch_concurrency
        raw = await claim_loop_rate(conn, app_id, args.n, batch, "raw_claim", "raw_delete")
        api = await claim_loop_rate(conn, app_id, args.n, batch, "api_claim", "api_complete")
        await conn.execute(q("reset"))
    peer = await procrastinate_rate(uri, args.peer_n, settings.dispatch_concurrency)
    return {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "dispatcher": {
            "concurrency": settings.dispatch_concurrency,
            "lease_sec": settings.dispatch_lease_sec,
        },
        "sql_noop_drain": sql_drain,
        "webhook_drain": hook_drain,
        "idle_latency_sql": lat,
        "raw_claim_loop": raw,
        "api_claim_loop_no_handlers": api,
        "ratio_sql_to_raw": round(sql_drain["per_sec"] / raw["per_sec"], 3),
        "ratio_webhook_to_raw": round(hook_drain["per_sec"] / raw["per_sec"], 3),
        "ratio_api_loop_to_raw": round(api["per_sec"] / raw["per_sec"], 3),
        "procrastinate_noop_drain": peer,
        "ratio_sql_to_procrastinate": (
            round(sql_drain["per_sec"] / peer["per_sec"], 1) if peer is not None else None
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="deliveries per drain run")
    parser.add_argument("--latency-n", type=int, default=200, help="single deliveries timed")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="enqueues per second when timing latency"
    )
    parser.add_argument(
        "--peer-n", type=int, default=2000, help="procrastinate jobs drained (it is slower)"
    )
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        run_receiver(args.receiver)
        return
    # SIGTERM ends the run like Ctrl-C, so the embedded PostgreSQL is stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="picloud-bench-", dir=base) as tmp,
        embedded_postgres(Path(tmp), cleanup_mode="delete") as uri,
        receiver_process(port),
    ):
        migrate(uri)
        result = asyncio.run(bench(args, uri, f"http://127.0.0.1:{port}/hook"))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
