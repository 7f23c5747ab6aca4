"""HTTP request rate of PiCloud's data routes beside the "thin Python + one query" ceiling.

    .venv/bin/python bench/http.py [--duration 3] [--repeats 2] [--connections 4,16]
        [--targets embedded,durable] [--routes get_kv,put_kv,get_doc,publish]

For each route (GET kv, PUT kv, GET doc, publish) and each number of keep-alive
connections, requests per second of ``picloud serve`` (a separate process) beside a
reference measured in the same run: a bare aiohttp server (another process) whose
handler parses the same request, runs one equivalent single SELECT or INSERT on a
psycopg pool of the same size and answers the row as JSON. The ratio is picloud's rate
over the reference's; the target is >= 0.85 for every route.

Targets: ``embedded`` is the embedded PostgreSQL ``picloud serve`` uses; ``durable`` a
throwaway PostgreSQL 15 cluster with default durable settings (fsync on, a normal data
directory under /var/tmp), started by this script (tests/pg_cluster.py). Each gets a
fresh database migrated to this checkout's schema.

Load comes from ``wrk`` (C, one thread, epoll: it uses a small share of a core, so it
does not take the servers' CPU as a Python load generator would); when it is missing
and this runs as root, the script installs Debian's package with apt-get. The writes
spread over keys and topics (a counter in the wrk script) so that rows are not
contended more than in real use. Points alternate picloud / reference, ``--repeats``
times; each figure is [min, max]. Server and load-generator CPU (% of one core) are
reported per point, with the CPU time per request answered of the server, the database
(every process of the PostgreSQL server: backends, WAL writer, checkpointer) and wrk, and
their sum (``total_cpu_us_per_request``); ``cpu_ratio`` is the reference's mean sum over
picloud's, the ratio the rates would show if each were bound by the machine's CPU alone.
The load average at the start and end is reported too: the machine is shared.

The Starlette + broadcaster peer's publish route (broadcaster's PostgreSQL backend, on
asyncpg) is measured when starlette, broadcaster, uvicorn and asyncpg are importable
(``pip install -e '.[bench]'``); otherwise the JSON says why it was skipped. Prints one
JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.targets import TARGETS  # noqa: E402
from bench.wrk import postmaster_of, run_wrk, spread, wrk_binary  # noqa: E402

ADMIN_KEY = "pck_bench_admin_key_0123456789abcdef"
POOL_MAX = 16  # picloud's pool (picloud.db.open_pool): the reference gets the same
KEYS = 1000  # PUT kv spreads over this many keys
TOPICS = 16  # publish spreads over this many topics

# The reference's tables for the writes: the same columns as picloud's, no triggers.
REFERENCE_DDL = """
CREATE TABLE IF NOT EXISTS public.bench_kv (
    app_id uuid NOT NULL, key text NOT NULL, value jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, key));
CREATE TABLE IF NOT EXISTS public.bench_messages (
    id bigserial PRIMARY KEY, app_id uuid NOT NULL, topic text NOT NULL, message jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT clock_timestamp());
"""


# --------------------------------------------------------------------------- the reference


def reference_server(port: int, conninfo: str) -> None:
    """The ceiling: aiohttp, one pool, one statement per request, the row as JSON."""
    import asyncio

    import orjson
    from aiohttp import web
    from psycopg.rows import dict_row
    from psycopg.types.json import Jsonb
    from psycopg_pool import AsyncConnectionPool

    def answer(row: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(row), status=status, content_type="application/json")

    async def main() -> None:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo,
            min_size=2,
            max_size=POOL_MAX,
            kwargs={"row_factory": dict_row, "autocommit": True},  # as picloud: no BEGIN
            open=False,
        )
        await pool.open(wait=True)

        async def one(sql: str, params: dict[str, Any]) -> Any:
            async with pool.connection() as conn:
                return await (await conn.execute(sql, params)).fetchone()

        async def get_kv(request: web.Request) -> web.Response:
            row = await one(
                "SELECT key, value, created_at, updated_at FROM picloud.kv"
                " WHERE app_id = %(a)s AND key = %(k)s",
                {"a": uuid.UUID(request.match_info["app"]), "k": request.match_info["key"]},
            )
            return answer(row) if row else answer({"error": "no such key"}, 404)

        async def put_kv(request: web.Request) -> web.Response:
            value = orjson.loads(await request.read())
            row = await one(
                "INSERT INTO public.bench_kv (app_id, key, value) VALUES (%(a)s, %(k)s, %(v)s)"
                " ON CONFLICT (app_id, key) DO UPDATE SET value = EXCLUDED.value,"
                " updated_at = now()"
                " RETURNING key, value, created_at, updated_at, xmax = 0 AS created",
                {
                    "a": uuid.UUID(request.match_info["app"]),
                    "k": request.match_info["key"],
                    "v": Jsonb(value),
                },
            )
            return answer(row, 201 if row.pop("created") else 200)

        async def get_doc(request: web.Request) -> web.Response:
            row = await one(
                "SELECT id, data, version, created_at, updated_at FROM picloud.docs"
                " WHERE app_id = %(a)s AND collection = %(c)s AND id = %(i)s",
                {
                    "a": uuid.UUID(request.match_info["app"]),
                    "c": request.match_info["collection"],
                    "i": request.match_info["id"],
                },
            )
            return answer(row) if row else answer({"error": "no such document"}, 404)

        async def publish(request: web.Request) -> web.Response:
            body = orjson.loads(await request.read())
            row = await one(
                "INSERT INTO public.bench_messages (app_id, topic, message)"
                " VALUES (%(a)s, %(t)s, %(m)s::jsonb) RETURNING id, published_at",
                {
                    "a": uuid.UUID(request.match_info["app"]),
                    "t": request.match_info["topic"],
                    "m": orjson.dumps(body["message"]).decode(),
                },
            )
            return answer(row, 201)

        async def ready(request: web.Request) -> web.Response:
            return answer({"status": "ok"})

        app = web.Application()
        base = "/api/v1/apps/{app}"
        app.router.add_get(base + "/kv/{key}", get_kv)
        app.router.add_put(base + "/kv/{key}", put_kv)
        app.router.add_get(base + "/collections/{collection}/docs/{id}", get_doc)
        app.router.add_post(base + "/topics/{topic}/messages", publish)
        app.router.add_get("/ready", ready)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


# --------------------------------------------------------------------------- the peer


def peer_available() -> str | None:
    """None when the Starlette + broadcaster peer can run, else why not."""
    missing = [m for m in ("starlette", "broadcaster", "uvicorn", "asyncpg") if not _importable(m)]
    return f"not installed: {', '.join(missing)}" if missing else None


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def asyncpg_url(conninfo: str) -> str:
    """A libpq conninfo (keywords or URL) as the URL asyncpg takes (a socket directory
    as host goes in the query string)."""
    from urllib.parse import quote, urlencode

    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    auth = quote(str(parts.get("user", "")))
    if parts.get("password"):
        auth += ":" + quote(str(parts["password"]))
    query = {k: str(parts[k]) for k in ("host", "port") if parts.get(k)}
    return f"postgresql://{auth}@/{quote(str(parts.get('dbname', '')))}?{urlencode(query)}"


def peer_server(port: int, conninfo: str) -> None:
    """Starlette + broadcaster (its PostgreSQL backend: NOTIFY), publish only: what a
    typical Python peer does, writing nothing durable."""
    import asyncio

    import uvicorn
    from broadcaster import Broadcast
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    broadcast = Broadcast(asyncpg_url(conninfo))
    # Its PostgreSQL backend publishes on the one asyncpg connection it listens on, which
    # runs one statement at a time ("another operation is in progress" otherwise): its
    # users serialise publishes, and so does the peer.
    one_at_a_time = asyncio.Lock()

    async def publish(request: Request) -> JSONResponse:
        body = await request.json()
        async with one_at_a_time:
            await broadcast.publish(channel=request.path_params["topic"], message=json.dumps(body))
        return JSONResponse({"ok": True}, status_code=201)

    async def ready(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await broadcast.connect()
        try:
            yield
        finally:
            await broadcast.disconnect()

    app = Starlette(
        routes=[
            Route("/api/v1/apps/{app}/topics/{topic}/messages", publish, methods=["POST"]),
            Route("/ready", ready),
        ],
        lifespan=lifespan,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------- servers


@contextlib.contextmanager
def process(argv: list[str], ready_url: str, env: dict[str, str] | None = None) -> Iterator[int]:
    import urllib.request

    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below, after the process)
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise SystemExit(f"{argv[:3]} exited: {log.read()[-2000:].decode()}")
            try:
                with urllib.request.urlopen(ready_url, timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


# --------------------------------------------------------------------------- set-up


class Target:
    """One migrated database with an app, a key, a kv entry, a document and topics."""

    def __init__(self, conninfo: str, work: Path) -> None:
        from picloud.migrate import migrate

        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_http")
            conn.execute("CREATE DATABASE bench_http")
        self.conninfo = psycopg.conninfo.make_conninfo(conninfo, dbname="bench_http")
        migrate(self.conninfo)
        self.postmaster = postmaster_of(self.conninfo)  # whose CPU each point counts
        self.work = work
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(REFERENCE_DDL)
            row = conn.execute("SELECT id FROM picloud.create_app('bench', 'bench')").fetchone()
            assert row is not None
            self.app_id: uuid.UUID = row[0]
            key = conn.execute(
                "SELECT key FROM picloud.create_api_key(%s, 'bench', ARRAY['app:admin'])",
                (self.app_id,),
            ).fetchone()
            assert key is not None
            self.key: str = key[0]
            conn.execute("SELECT picloud.kv_set(%s, 'k', '{\"n\": 1}')", (self.app_id,))
            conn.execute(
                "INSERT INTO picloud.docs (app_id, collection, id, data)"
                " VALUES (%s, 'notes', 'd1', '{\"title\": \"hello\"}')",
                (self.app_id,),
            )
            for i in range(TOPICS):
                conn.execute("SELECT picloud.create_topic(%s, %s)", (self.app_id, f"t{i}"))

    def routes(self) -> dict[str, dict[str, Any]]:
        base = f"/api/v1/apps/{self.app_id}"
        common = {"key": self.key, "suffix": ""}
        return {
            "get_kv": {**common, "method": "GET", "prefix": f"{base}/kv/k", "body": "nil",
                       "spread": 0},
            "put_kv": {**common, "method": "PUT", "prefix": f"{base}/kv/key", "spread": KEYS,
                       "body": '\'{"n": 1, "text": "a value"}\''},
            "get_doc": {**common, "method": "GET", "prefix": f"{base}/collections/notes/docs/d1",
                        "body": "nil", "spread": 0},
            "publish": {**common, "method": "POST", "prefix": f"{base}/topics/t", "spread": TOPICS,
                        "suffix": "/messages", "body": '\'{"message": {"n": 1, "text": "hi"}}\''},
        }  # fmt: skip

    def picloud_env(self, port: int) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")},
            "DATABASE_URL": self.conninfo,
            "PICLOUD_LISTEN": f"127.0.0.1:{port}",
            "PICLOUD_ADMIN_KEY": ADMIN_KEY,
            "PICLOUD_DATA_DIR": str(self.work / "picloud"),
            "PICLOUD_MIGRATE": "false",
            "PICLOUD_ROLES": "relay",  # publish's NOTIFY has a listener, as in production
        }


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure_target(conninfo: str, args: argparse.Namespace, wrk: str) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="picloud-bench-http-", dir="/var/tmp"))
    target = Target(conninfo, work)
    routes = {name: r for name, r in target.routes().items() if name in args.routes}
    pic_port, ref_port = free_port(), free_port()
    me = [sys.executable, __file__]
    figures: dict[str, Any] = {}
    with (
        process(
            [sys.executable, "-m", "picloud", "--log-level", "WARNING", "serve"],
            f"http://127.0.0.1:{pic_port}/healthz",
            env=target.picloud_env(pic_port),
        ) as pic_pid,
        process(
            [*me, "--reference", str(ref_port), target.conninfo],
            f"http://127.0.0.1:{ref_port}/ready",
        ) as ref_pid,
    ):
        servers = {
            "picloud": (f"http://127.0.0.1:{pic_port}", pic_pid),
            "reference": (f"http://127.0.0.1:{ref_port}", ref_pid),
        }
        for name, route in routes.items():
            for url, pid in servers.values():  # warm up pools, prepared plans, caches
                run_wrk(wrk, url, route, max(args.connections), 1, pid, target.postmaster)
            figures[name] = {}
            for count in args.connections:
                runs: dict[str, list[dict[str, Any]]] = {s: [] for s in servers}
                for _ in range(args.repeats):
                    for server, (url, pid) in servers.items():  # alternate: drift hits both
                        point = run_wrk(
                            wrk, url, route, count, args.duration, pid, target.postmaster
                        )
                        runs[server].append(point)
                figures[name][str(count)] = summarise(runs)
    if "publish" in routes:
        figures["peer_publish"] = measure_peer(target, routes["publish"], args, wrk, figures)
    shutil.rmtree(work, ignore_errors=True)
    return figures


def cpu_per_request(points: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Each point's CPU per request answered: the server's, the database's (every process
    of the PostgreSQL server), wrk's, and their sum: what one request costs the machine."""
    parts = ("server", "database", "wrk")
    out = {f"{p}_cpu_us_per_request": [x[f"{p}_cpu_us_per_request"] for x in points] for p in parts}
    out["total_cpu_us_per_request"] = [
        sum(x[f"{p}_cpu_us_per_request"] for p in parts) for x in points
    ]
    return out


def _mean(values: list[int]) -> float:
    return sum(values) / max(1, len(values))


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for server, points in runs.items():
        rates = [p["rps"] for p in points]
        out[server] = {
            "rps": spread(rates),
            "server_cpu_pct": [p["server_cpu_pct"] for p in points],
            **cpu_per_request(points),
            "wrk_cpu_pct": [p["wrk_cpu_pct"] for p in points],
            "non_2xx": sum(p["non_2xx"] for p in points),
        }
        errors = [p["socket_errors"] for p in points if p["socket_errors"]]
        if errors:
            out[server]["socket_errors"] = errors
    pic, ref = out["picloud"]["rps"], out["reference"]["rps"]
    # [worst, best] pairing of the spreads; the median-free honest range.
    out["ratio"] = [round(pic[0] / max(1, ref[1]), 3), round(pic[1] / max(1, ref[0]), 3)]
    out["cpu_ratio"] = round(
        _mean(out["reference"]["total_cpu_us_per_request"])
        / max(1.0, _mean(out["picloud"]["total_cpu_us_per_request"])),
        3,
    )
    out["ratio_of_means"] = round(
        sum(p["rps"] for p in runs["picloud"]) / max(1.0, sum(p["rps"] for p in runs["reference"])),
        3,
    )
    return out


def measure_peer(
    target: Target, route: dict[str, Any], args: argparse.Namespace, wrk: str, figures: Any
) -> dict[str, Any]:
    why = peer_available()
    if why is not None:
        return {"skipped": f"Starlette + broadcaster peer {why}"}
    port = free_port()
    result: dict[str, Any] = {"note": "publish only; broadcaster's NOTIFY, nothing stored"}
    with process(
        [sys.executable, __file__, "--peer", str(port), target.conninfo],
        f"http://127.0.0.1:{port}/ready",
    ) as pid:
        url = f"http://127.0.0.1:{port}"
        run_wrk(wrk, url, route, max(args.connections), 1, pid, target.postmaster)
        for count in args.connections:
            points = [
                run_wrk(wrk, url, route, count, args.duration, pid, target.postmaster)
                for _ in range(args.repeats)
            ]
            rates = [p["rps"] for p in points]
            pic = figures["publish"][str(count)]["picloud"]["rps"]
            result[str(count)] = {
                "rps": spread(rates),
                **cpu_per_request(points),
                "non_2xx": sum(p["non_2xx"] for p in points),
                "picloud_to_peer": [round(pic[0] / max(rates), 3), round(pic[1] / min(rates), 3)],
            }
    return result


# This file's name is the standard library's ``http``. A script run from bench/ has bench/
# first on sys.path, so ``import http`` (urllib and aiohttp do it) finds this file: run as a
# script, it drops that entry before importing them; imported as ``http`` by a sibling
# script, it hands the name over to the standard library's package (end of the file).


def unshadow_http() -> None:
    """Drop this file's directory from sys.path."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]


def hand_over_http() -> None:
    """Imported as ``http``: become the standard library's package (the import statement
    returns whatever sys.modules holds once this module has run)."""
    import importlib

    unshadow_http()
    del sys.modules["http"]
    sys.modules["http"] = importlib.import_module("http")


def main() -> int:
    unshadow_http()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per point")
    parser.add_argument("--repeats", type=int, default=2, help="runs per point (spread)")
    parser.add_argument(
        "--connections",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[4, 16],
        help="comma-separated keep-alive connection counts",
    )
    parser.add_argument("--targets", default="embedded,durable", help="embedded,durable")
    parser.add_argument(
        "--routes",
        type=lambda s: s.split(","),
        default=["get_kv", "put_kv", "get_doc", "publish"],
        help="comma-separated: get_kv,put_kv,get_doc,publish",
    )
    parser.add_argument(
        "--reference", nargs=2, metavar=("PORT", "CONNINFO"), help=argparse.SUPPRESS
    )
    parser.add_argument("--peer", nargs=2, metavar=("PORT", "CONNINFO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference:
        reference_server(int(args.reference[0]), args.reference[1])
        return 0
    if args.peer:
        peer_server(int(args.peer[0]), args.peer[1])
        return 0
    wrk = wrk_binary()
    started = time.monotonic()
    report: dict[str, Any] = {
        "note": "measured on a shared machine (other work running): see the load averages",
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        },
        "duration_s_per_point": args.duration,
        "repeats": args.repeats,
        "load_generator": "wrk -t1 (keep-alive connections)",
        "unit": "requests per second, [min, max] over repeats; ratio = picloud / reference",
        "target_ratio": 0.85,
    }
    for name in args.targets.split(","):
        with TARGETS[name](Path("/var/tmp")) as conninfo:
            report[name] = measure_target(conninfo, args, wrk)
        report["machine"][f"loadavg_after_{name}"] = [round(x, 2) for x in os.getloadavg()]
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "http":
    hand_over_http()
elif __name__ == "__main__":
    raise SystemExit(main())
