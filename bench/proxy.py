"""Publish->receive latency through nginx (TLS, HTTP/2, docker/nginx.conf) against direct
HTTP/1.1 to the node, in the same run, at 100 subscribers.

    .venv/bin/python bench/proxy.py [--subscribers 100] [--seconds 10] [--rounds 3]

An embedded PostgreSQL in a temporary directory, one ``picloud serve`` process, Debian's
nginx started with docker/nginx.conf (addresses swapped, a self-signed certificate), and
this process as the load generator: one publisher (50 messages/s, direct to the node, each
carrying its send time) while two groups of subscribers listen *at the same time* (one curl
each: HTTP/1.1 direct, and HTTP/2 over TLS through the proxy), so every message is timed on
both paths under the same load; a machine busy with other work slows both alike instead of
whichever group happened to run then. Prints one JSON document. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from picloud.embedded import embedded_postgres  # noqa: E402
from picloud.migrate import migrate  # noqa: E402
from tests.deploy_util import start_nginx  # noqa: E402
from tests.fix_server import free_port  # noqa: E402
from tests.procs import picloud_env, start_picloud, stop, wait_healthy  # noqa: E402

ADMIN_KEY = "pck_bench_admin_key_0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
RATE = 50  # publishes per second


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def subscriber(url: str, curl_args: list[str], out: list[float], ready: asyncio.Event,
                     counter: list[int], total: int) -> None:  # fmt: skip
    """One curl process per subscriber (the same C client for both paths, so the Python
    side only splits lines); latency = arrival here - the send time in the message."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sN", *curl_args, "-H", "Host: localhost", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async for line in proc.stdout:
            if line.startswith(b":ok"):
                counter[0] += 1
                if counter[0] == total:
                    ready.set()
            elif line.startswith(b"data: "):
                sent = json.loads(line[6:])["message"]["t"]
                out.append(time.perf_counter() - sent)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def summary(latencies: list[float], expected: int) -> dict[str, Any]:
    ms = [v * 1000 for v in latencies]
    return {
        "received": len(ms),
        "expected": expected,
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
    }


async def round_(groups: dict[str, tuple[str, list[str]]], node: str, app_id: str, n: int,
                 seconds: float) -> dict[str, Any]:  # fmt: skip
    """Every group of ``n`` subscribers listens to the same publishes."""
    latencies: dict[str, list[float]] = {name: [] for name in groups}
    ready, counter = asyncio.Event(), [0]
    # Interleaved, so neither group is always the first the relay writes to.
    tasks = [
        asyncio.create_task(subscriber(url, args, latencies[name], ready, counter, n * len(groups)))
        for _ in range(n)
        for name, (url, args) in groups.items()
    ]
    await asyncio.wait_for(ready.wait(), 60)
    async with httpx.AsyncClient(base_url=node, timeout=30) as pub:
        published = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            body = {"message": {"t": time.perf_counter()}}
            reply = await pub.post(f"/api/v1/apps/{app_id}/topics/bench/messages", json=body,
                                   headers=AUTH)  # fmt: skip
            assert reply.status_code == 201
            published += 1
            await asyncio.sleep(max(0.0, start + published / RATE - time.perf_counter()))
    deadline = time.monotonic() + 10
    while (  # noqa: ASYNC110
        any(len(got) < published * n for got in latencies.values()) and time.monotonic() < deadline
    ):
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    result: dict[str, Any] = {"published": published}
    result |= {name: summary(got, published * n) for name, got in latencies.items()}
    return result


async def run(args: argparse.Namespace, node_port: int, nginx_url: str, cert: Path,
              app_id: str) -> dict[str, Any]:  # fmt: skip
    node = f"http://127.0.0.1:{node_port}"
    path = "/realtime/topics/bench"
    groups = {
        "direct": (node + path, ["--http1.1"]),
        "nginx_http2": (nginx_url + path, ["--http2", "--cacert", str(cert)]),
    }
    rounds = []
    for _ in range(args.rounds):
        measured = await round_(groups, node, app_id, args.subscribers, args.seconds)
        measured["p99_ratio"] = round(
            measured["nginx_http2"]["p99_ms"] / measured["direct"]["p99_ms"], 2
        )
        measured["p50_ratio"] = round(
            measured["nginx_http2"]["p50_ms"] / measured["direct"]["p50_ms"], 2
        )
        rounds.append(measured)
    ratios = sorted(r["p99_ratio"] for r in rounds)
    return {"subscribers_per_path": args.subscribers, "rate_per_s": RATE,
            "seconds": args.seconds, "rounds": rounds,
            "p99_ratio_median": ratios[len(ratios) // 2],
            "p99_ratio_range": [ratios[0], ratios[-1]],
            "target": "nginx p99 <= 1.5 x direct"}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="picloud-bench-proxy-"))
    with embedded_postgres(work, cleanup_mode="delete") as url:
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            app = conn.execute(
                "INSERT INTO picloud.apps (slug, name) VALUES ('bench', 'bench') RETURNING id"
            ).fetchone()
            assert app is not None
            conn.execute("INSERT INTO picloud.app_domains (app_id, host) VALUES (%s, 'localhost')",
                         (app[0],))  # fmt: skip
            conn.execute("SELECT picloud.create_topic(%s, 'bench', true, 'public')", (app[0],))
        port = free_port()
        env = picloud_env(DATABASE_URL=url, PICLOUD_LISTEN=f"127.0.0.1:{port}",
                          PICLOUD_ADMIN_KEY=ADMIN_KEY, PICLOUD_DATA_DIR=str(work / "node"),
                          PICLOUD_ROLES="relay,gc", PICLOUD_MIGRATE="false")  # fmt: skip
        proc = start_picloud(["serve"], env, work, work / "node.log")
        nginx = None
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc, work / "node.log")
            # Both upstream lines point at the one node: only the proxy hop is measured.
            nginx = start_nginx([port, port], free_port(), work / "nginx")
            result = asyncio.run(run(args, port, nginx.url, nginx.cert, str(app[0])))
        finally:
            if nginx is not None:
                nginx.stop()
            stop(proc)
    load = Path("/proc/loadavg").read_text().split()[:3]
    result["load_average"] = [float(x) for x in load]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
