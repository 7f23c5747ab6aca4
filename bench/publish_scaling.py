"""Publish scaling benchmark: how SQL publish throughput grows with concurrent writers,
beside raw INSERT and raw INSERT + pg_notify measured in the same run.

    .venv/bin/python bench/publish_scaling.py [--duration 3] [--repeats 2]
        [--connections 1,4,16,32] [--targets durable,embedded] [--baseline REV]
        [--sections sql,http] [--http-connections 1,4,16,64]

Targets: ``durable`` is a throwaway PostgreSQL 15 cluster with default durable settings
(fsync on, a normal data directory under /var/tmp, not tmpfs), started by this script;
``embedded`` is the embedded PostgreSQL ``picloud serve`` uses (its data directory also
under /var/tmp). Each target gets a fresh database migrated to this checkout's schema.

``--baseline REV`` adds a second database per target migrated by git revision REV's own
``migrations/`` and ``sql/`` (``git archive REV``), measured in alternation with this
checkout's: before/after figures from one run on one machine.

Every point is ``--duration`` seconds of closed-loop autocommit statements on N
connections (one thread each), repeated ``--repeats`` times; each figure is reported as
[min, max] transactions per second. Beside them: ``publish_to_raw_ratio`` (publish to
many topics / raw INSERT) and ``one_to_many_topics_ratio`` (publish to one topic / to
many), each [low, high] from the spread.

``--latency N`` (default 100; 0 skips) also measures publish -> receive on the durable
target: ``picloud serve`` of this checkout (and, with ``--baseline``, of REV: its ``src/``
first on PYTHONPATH) on a database of its own, N SSE subscribers of one topic in two
load-generator processes, SQL publishes at 50/s (bench/realtime.py's latency method),
alternating head and baseline ``--repeats`` times; p50/p99 per run, and the ratio of the
p99s (head / baseline, [best, worst]). Prints one JSON document.

The HTTP rows (``--sections http``, at ``--http-connections``, default 1,4,16,64) start a
``picloud serve`` (roles: relay) and a thin aiohttp handler that runs one ``INSERT …
RETURNING pg_notify(…)`` per request on a psycopg pool of PiCloud's size, both on one
fresh database of the target, and drive them alternately with keep-alive connections
from ``wrk`` (bench/wrk.py: C, one thread, so the load generator does not take the
servers' CPU): requests/s, latency p50/p99 (each [min, max] over repeats), the server's
CPU per request, and for PiCloud the mean group size of its group commit (from
``/metrics``). "Many topics" spreads the requests over 64 topics.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.targets import TARGETS  # noqa: E402
from bench.wrk import run_wrk, spread, wrk_binary  # noqa: E402

Work = Callable[[psycopg.Connection[Any], int, float], int]


def closed_loop(conninfo: str, work: Work, count: int, duration: float) -> float:
    """Run ``work(conn, i, deadline) -> n`` on ``count`` connections; total per second."""
    done: list[int] = []
    conns = [psycopg.connect(conninfo, autocommit=True) for _ in range(count)]
    barrier = threading.Barrier(count + 1)

    def run(i: int) -> None:
        barrier.wait()
        done.append(work(conns[i], i, time.monotonic() + duration))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    try:
        for t in threads:
            t.start()
        barrier.wait()
        started = time.monotonic()
        for t in threads:
            t.join(duration + 60)
        return sum(done) / (time.monotonic() - started)
    finally:
        for c in conns:
            c.close()


def statement_loop(sql: str, params: Callable[[int, int], tuple[Any, ...]]) -> Work:
    def work(conn: psycopg.Connection[Any], i: int, deadline: float) -> int:
        cur = psycopg.ClientCursor(conn) if ";" in sql else conn.cursor()
        n = 0
        while time.monotonic() < deadline:
            cur.execute(sql, params(i, n))
            n += 1
        return n

    return work


class Database:
    """One database migrated by a source tree (``tree``: this checkout when None), with an
    app, topics and the raw reference table unless ``bare``."""

    def __init__(self, conninfo: str, name: str, tree: Path | None, *, bare: bool = False) -> None:
        self.name = name
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.conninfo = psycopg.conninfo.make_conninfo(conninfo, dbname=name)
        from picloud.migrate import migrate

        migrate(self.conninfo, tree)
        if bare:
            return
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            row = conn.execute(
                "INSERT INTO picloud.apps (slug, name) VALUES ('bench', 'bench') RETURNING id"
            ).fetchone()
            assert row is not None
            self.app_id: uuid.UUID = row[0]
            for t in range(64):
                conn.execute(
                    "SELECT picloud.create_topic(%s, %s, true, 'public')", (self.app_id, f"t{t}")
                )
            conn.execute(
                "CREATE TABLE public.bench_raw (id bigserial PRIMARY KEY,"
                " topic text NOT NULL, message jsonb NOT NULL,"
                " published_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            )

    def workloads(self) -> dict[str, Work]:
        app = self.app_id
        msg = '{"n": 1}'
        return {
            "raw_insert": statement_loop(
                "INSERT INTO public.bench_raw (topic, message) VALUES (%s, %s::jsonb)",
                lambda i, n: (f"t{i}", msg),
            ),
            "raw_insert_notify": statement_loop(
                "INSERT INTO public.bench_raw (topic, message) VALUES (%s, %s::jsonb);"
                " SELECT pg_notify('bench_raw', %s)",
                lambda i, n: (f"t{i}", msg, f"t{i} {n}"),
            ),
            "publish_many_topics": statement_loop(
                "SELECT picloud.publish(%s, %s, %s::jsonb)", lambda i, n: (app, f"t{i}", msg)
            ),
            "publish_one_topic": statement_loop(
                "SELECT picloud.publish(%s, %s, %s::jsonb)", lambda i, n: (app, "t0", msg)
            ),
        }


@contextlib.contextmanager
def source_tree(rev: str, base: Path) -> Iterator[Path]:
    """Git revision ``rev`` of this repository, unpacked in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="picloud-bench-rev-", dir=base) as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield Path(tmp)


def measure_target(conninfo: str, args: argparse.Namespace, tree: Path | None) -> dict[str, Any]:
    variants = {"head": Database(conninfo, "bench_head", None)}
    if tree is not None:
        variants["baseline"] = Database(conninfo, "bench_baseline", tree)
    figures: dict[str, dict[str, dict[str, list[float]]]] = {v: {} for v in variants}
    names = list(variants["head"].workloads())
    for workload in names:
        for count in args.connections:
            runs: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.repeats):
                for variant, db in variants.items():  # alternate: drift hits both alike
                    work = db.workloads()[workload]
                    runs[variant].append(closed_loop(db.conninfo, work, count, args.duration))
            for variant, values in runs.items():
                figures[variant].setdefault(workload, {})[str(count)] = spread(values)
    for variant in figures:
        raw = figures[variant]["raw_insert"]
        figures[variant]["publish_to_raw_ratio"] = {
            c: [
                round(figures[variant]["publish_many_topics"][c][0] / max(1, raw[c][1]), 3),
                round(figures[variant]["publish_many_topics"][c][1] / max(1, raw[c][0]), 3),
            ]
            for c in raw
        }
        many = figures[variant]["publish_many_topics"]
        one = figures[variant]["publish_one_topic"]
        figures[variant]["one_to_many_topics_ratio"] = {
            c: [round(one[c][0] / max(1, many[c][1]), 3), round(one[c][1] / max(1, many[c][0]), 3)]
            for c in many
        }
    return figures


def measure_latency(
    conninfo: str, args: argparse.Namespace, tree: Path | None, base: Path
) -> dict[str, Any]:
    """Publish -> receive with ``args.latency`` subscribers, head and baseline alternating."""
    sys.path.insert(0, str(ROOT / "bench"))
    import realtime as realtime_bench  # bench/realtime.py

    trees: dict[str, Path | None] = {"head": None}
    if tree is not None:
        trees["baseline"] = tree
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in trees}
    for _ in range(args.repeats):
        for variant, src in trees.items():
            db = Database(conninfo, f"bench_latency_{variant}", src, bare=True)
            with tempfile.TemporaryDirectory(prefix="picloud-bench-lat-", dir=base) as work:
                bench = realtime_bench.Bench(Path(work), db.conninfo, quick=False)
                bench.setup()
                saved = os.environ.get("PYTHONPATH")
                if src is not None:  # the server process runs that revision's code
                    os.environ["PYTHONPATH"] = str(src / "src")
                try:
                    with bench.picloud(capacity=64):
                        result = asyncio.run(bench.latency(args.latency))
                finally:
                    if saved is None:
                        os.environ.pop("PYTHONPATH", None)
                    else:
                        os.environ["PYTHONPATH"] = saved
            runs[variant].append(
                {k: result[k] for k in ("p50_ms", "p99_ms", "max_ms", "deliveries", "lost")}
                | {"duplicated": result["duplicated"], "loadavg_1m": round(os.getloadavg()[0], 2)}
            )
    out: dict[str, Any] = {"subscribers": args.latency, "publish_rate_per_s": 50, "runs": runs}
    if "baseline" in runs:
        head = [r["p99_ms"] for r in runs["head"]]
        old = [r["p99_ms"] for r in runs["baseline"]]
        out["p99_head_to_baseline_ratio"] = [
            round(min(head) / max(old), 3),
            round(max(head) / min(old), 3),
        ]
        out["p99_head_to_baseline_ratio_of_medians"] = round(
            sorted(head)[len(head) // 2] / sorted(old)[len(old) // 2], 3
        )
    return out


# ---------------------------------------------------------------------------------------
# HTTP publish (group commit) beside a thin aiohttp handler doing one INSERT + pg_notify.
# ---------------------------------------------------------------------------------------

HTTP_MESSAGE = '\'{"message": {"n": 1}}\''  # a Lua string literal (bench/wrk.py)
HTTP_TOPICS = 64  # "many topics": request n goes to topic t(n % 64)


def serve_thin(port: int, conninfo: str) -> None:
    """The reference: aiohttp, a psycopg pool as large as PiCloud's, and per request one
    statement that inserts the message and notifies (its own transaction and NOTIFY)."""
    import orjson

    sql = (
        "INSERT INTO public.bench_raw (topic, message) VALUES (%s, %s::jsonb)"
        " RETURNING id, pg_notify('bench_raw', topic || ' ' || id)"
    )

    async def publish(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        if not isinstance(body, dict) or "message" not in body:
            raise web.HTTPBadRequest()
        pool: AsyncConnectionPool[Any] = request.app[POOL]
        async with pool.connection() as conn:
            cur = await conn.execute(
                sql, (request.match_info["topic"], orjson.dumps(body["message"]).decode())
            )
            row = await cur.fetchone()
        assert row is not None
        return web.json_response({"id": row[0]}, status=201)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def pool_ctx(app: web.Application) -> Any:
        async with AsyncConnectionPool(
            conninfo, min_size=16, max_size=16, kwargs={"autocommit": True}
        ) as pool:
            app[POOL] = pool
            yield

    app = web.Application()
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_post("/topics/{topic}/messages", publish)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


POOL = web.AppKey("bench_pool", AsyncConnectionPool)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def http_server(argv: list[str], env: dict[str, str], port: int) -> Iterator[tuple[str, int]]:
    """A server process on ``port`` until the block ends; its base URL (once it answers)
    and its pid."""
    import urllib.request

    proc = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(proc.stderr.read().decode() if proc.stderr else "") from None
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def group_counters(url: str) -> tuple[float, float]:
    """(groups, requests) of picloud_publish_group* on a PiCloud node's /metrics."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    values = {"picloud_publish_groups_total": 0.0, "picloud_publish_group_requests_total": 0.0}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = float(value)
    return values["picloud_publish_groups_total"], values["picloud_publish_group_requests_total"]


# The figures of each HTTP point, from bench/wrk.py run_wrk's: name -> its key there.
HTTP_FIGURES = {"requests_per_s": "rps", "latency_ms_p50": "latency_ms_p50",
                "latency_ms_p99": "latency_ms_p99"}  # fmt: skip


def measure_http(conninfo: str, args: argparse.Namespace) -> dict[str, Any]:
    """HTTP publish through PiCloud (``picloud serve``, roles relay) and through the thin
    handler, on one database, alternating at each point; connection 1 is the lone
    publish (its latency is reported)."""
    import secrets

    db = Database(conninfo, "bench_http", None)
    admin = "pck_bench_" + secrets.token_hex(20)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("SELECT picloud.ensure_admin_key(%s)", (admin,))
        row = conn.execute(
            "SELECT key FROM picloud.create_api_key(%s, 'bench', ARRAY['topics:publish'])",
            (db.app_id,),
        ).fetchone()
        assert row is not None
        key: str = row[0]
    pc_port, thin_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory(prefix="picloud-bench-node-", dir="/var/tmp") as data_dir:
        return _measure_http(db, key, admin, data_dir, pc_port, thin_port, args)


def _measure_http(
    db: Database,
    key: str,
    admin: str,
    data_dir: str,
    pc_port: int,
    thin_port: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    picloud_env = {
        "DATABASE_URL": db.conninfo,
        "PICLOUD_LISTEN": f"127.0.0.1:{pc_port}",
        "PICLOUD_ADMIN_KEY": admin,
        "PICLOUD_ROLES": "relay",
        "PICLOUD_MIGRATE": "false",
        "PICLOUD_DATA_DIR": data_dir,
    }
    picloud_argv = [sys.executable, "-m", "picloud", "serve", "--no-migrate"]
    thin_argv = [sys.executable, __file__, "--serve-thin", str(thin_port), db.conninfo]
    post = {"method": "POST", "suffix": "/messages", "body": HTTP_MESSAGE}
    topics = f"/api/v1/apps/{db.app_id}/topics/t"
    variants = {
        "thin_insert_notify": {**post, "prefix": "/topics/t", "spread": HTTP_TOPICS, "key": ""},
        "picloud_publish_many_topics": {**post, "prefix": topics, "spread": HTTP_TOPICS,
                                        "key": key},
        "picloud_publish_one_topic": {**post, "prefix": topics + "0", "spread": 0, "key": key},
    }  # fmt: skip
    wrk = wrk_binary()
    figures: dict[str, Any] = {}
    with (
        http_server(picloud_argv, picloud_env, pc_port) as (pc_url, pc_pid),
        http_server(thin_argv, {}, thin_port) as (thin_url, thin_pid),
    ):
        servers = {"thin_insert_notify": (thin_url, thin_pid)}
        for variant, route in variants.items():  # warm up pools, prepared plans, caches
            url, pid = servers.get(variant, (pc_url, pc_pid))
            run_wrk(wrk, url, route, 16, 1, pid)
        for count in args.http_connections:
            runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
            size: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.repeats):
                for variant, route in variants.items():
                    url, pid = servers.get(variant, (pc_url, pc_pid))
                    before = group_counters(pc_url)
                    runs[variant].append(run_wrk(wrk, url, route, count, args.duration, pid))
                    after = group_counters(pc_url)
                    if after[0] > before[0] and variant.startswith("picloud"):
                        size[variant].append((after[1] - before[1]) / (after[0] - before[0]))
            for variant, points in runs.items():
                figure = figures.setdefault(variant, {})[str(count)] = {
                    **{f: spread([p[k] for p in points], 2 if f.startswith("lat") else 0)
                       for f, k in HTTP_FIGURES.items()},
                    "server_cpu_ms_per_request": min(
                        p["server_cpu_us_per_request"] for p in points
                    ) / 1000,
                }  # fmt: skip
                if bad := sum(p["non_2xx"] for p in points):
                    figure["non_201"] = bad
                if size[variant]:
                    figure["mean_group_size"] = spread(size[variant], 1)
    thin = figures["thin_insert_notify"]
    for variant in ("picloud_publish_many_topics", "picloud_publish_one_topic"):
        figures[f"{variant}_to_thin_ratio"] = {
            c: [
                round(figures[variant][c]["requests_per_s"][0] / max(1, t["requests_per_s"][1]), 2),
                round(figures[variant][c]["requests_per_s"][1] / max(1, t["requests_per_s"][0]), 2),
            ]
            for c, t in thin.items()
        }
    figures["unit"] = (
        "requests/s ([min, max] over repeats, as each latency percentile); load from wrk -t1"
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per point")
    parser.add_argument("--repeats", type=int, default=2, help="runs per point (spread)")
    parser.add_argument(
        "--connections",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 4, 16, 32],
        help="comma-separated connection counts",
    )
    parser.add_argument("--targets", default="durable,embedded", help="durable,embedded")
    parser.add_argument("--baseline", help="git revision to compare with (schema and code)")
    parser.add_argument(
        "--latency", type=int, default=100, help="subscribers of the latency runs (0: none)"
    )
    parser.add_argument(
        "--http-connections",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 4, 16, 64],
        help="comma-separated connection counts of the HTTP rows",
    )
    parser.add_argument("--sections", default="sql,http", help="sql,http")
    parser.add_argument(
        "--serve-thin", nargs=2, metavar=("PORT", "CONNINFO"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve_thin:
        serve_thin(int(args.serve_thin[0]), args.serve_thin[1])
        return 0
    sections = args.sections.split(",")
    base = Path("/var/tmp")
    started = time.monotonic()
    report: dict[str, Any] = {
        "note": "measured under parallel load (machine shared with other work)",
        "machine": {"cpus": os.cpu_count(), "loadavg_1m_start": round(os.getloadavg()[0], 2)},
        "duration_s_per_point": args.duration,
        "repeats": args.repeats,
        "unit": "transactions per second, [min, max] over repeats",
    }
    if args.baseline:
        report["baseline"] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    with contextlib.ExitStack() as stack:
        tree = stack.enter_context(source_tree(args.baseline, base)) if args.baseline else None
        for target in args.targets.split(","):
            with TARGETS[target](base) as conninfo:
                report[target] = measure_target(conninfo, args, tree) if "sql" in sections else {}
                if "sql" in sections and target == "durable" and args.latency:
                    report[target]["latency"] = measure_latency(conninfo, args, tree, base)
                if "http" in sections:
                    report[target]["http"] = measure_http(conninfo, args)
    report["machine"]["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
