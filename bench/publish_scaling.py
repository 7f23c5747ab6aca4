"""Publish scaling benchmark: how SQL publish throughput grows with concurrent writers,
beside raw INSERT and raw INSERT + pg_notify measured in the same run.

    .venv/bin/python bench/publish_scaling.py [--duration 3] [--repeats 2]
        [--connections 1,4,16,32] [--targets durable,embedded] [--baseline REV]

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


@contextlib.contextmanager
def durable_cluster(base: Path) -> Iterator[str]:
    from tests.pg_cluster import pg15_cluster

    # Default durability (fsync, synchronous_commit, full_page_writes all on); enough
    # connections for the largest point.
    with pg15_cluster(base=base, settings={"max_connections": "120"}) as conninfo:
        yield conninfo


@contextlib.contextmanager
def embedded_cluster(base: Path) -> Iterator[str]:
    from picloud.embedded import embedded_postgres

    with (
        tempfile.TemporaryDirectory(prefix="picloud-bench-emb-", dir=base) as tmp,
        embedded_postgres(Path(tmp), cleanup_mode="delete") as uri,
    ):
        yield uri


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
                figures[variant].setdefault(workload, {})[str(count)] = [
                    round(min(values)),
                    round(max(values)),
                ]
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
    args = parser.parse_args()
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
    clusters = {"durable": durable_cluster, "embedded": embedded_cluster}
    with contextlib.ExitStack() as stack:
        tree = stack.enter_context(source_tree(args.baseline, base)) if args.baseline else None
        for target in args.targets.split(","):
            with clusters[target](base) as conninfo:
                report[target] = measure_target(conninfo, args, tree)
                if target == "durable" and args.latency:
                    report[target]["latency"] = measure_latency(conninfo, args, tree, base)
    report["machine"]["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
