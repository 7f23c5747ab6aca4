"""Publish scaling benchmark: how SQL publish throughput grows with concurrent writers,
beside raw INSERT and raw INSERT + pg_notify measured in the same run.

    .venv/bin/python bench/publish_scaling.py [--duration 3] [--repeats 2]
        [--connections 1,4,16,32] [--targets durable,embedded] [--baseline REV]

Targets: ``durable`` is a throwaway PostgreSQL 15 cluster with default durable settings
(fsync on, a normal data directory under /var/tmp, not tmpfs), started by this script;
``embedded`` is the embedded PostgreSQL ``picloud serve`` uses (its data directory also
under /var/tmp). Each target gets a fresh database migrated to this checkout's schema.

``--baseline REV`` adds a second database per target whose SQL functions are those of
git revision REV (``git show REV:sql/*.sql`` applied over the migrated schema, and the
wake-up trigger of this checkout dropped), measured in alternation with this checkout's:
before/after figures from one run on one machine.

Every point is ``--duration`` seconds of closed-loop autocommit statements on N
connections (one thread each), repeated ``--repeats`` times; each figure is reported as
[min, max] transactions per second. Prints one JSON document.
"""

from __future__ import annotations

import argparse
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
    """One migrated database with an app, topics and the raw reference table."""

    def __init__(self, conninfo: str, name: str, baseline: str | None) -> None:
        self.name = name
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.conninfo = psycopg.conninfo.make_conninfo(conninfo, dbname=name)
        from picloud.migrate import migrate

        migrate(self.conninfo)
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            if baseline:
                apply_baseline(conn, baseline)
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


def apply_baseline(conn: psycopg.Connection[Any], rev: str) -> None:
    """Replace this checkout's SQL functions by those of git revision ``rev``."""
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", rev, "sql/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    conn.execute("DROP TRIGGER IF EXISTS messages_wake_relays ON picloud.messages")
    for path in sorted(listing):
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        conn.execute(text.encode())


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


def measure_target(conninfo: str, args: argparse.Namespace) -> dict[str, Any]:
    variants = {"head": Database(conninfo, "bench_head", None)}
    if args.baseline:
        variants["baseline"] = Database(conninfo, "bench_baseline", args.baseline)
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
    parser.add_argument("--baseline", help="git revision whose SQL functions to compare")
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
    clusters = {"durable": durable_cluster, "embedded": embedded_cluster}
    for target in args.targets.split(","):
        with clusters[target](base) as conninfo:
            report[target] = measure_target(conninfo, args)
    report["machine"]["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
