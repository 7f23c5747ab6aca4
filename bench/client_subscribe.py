"""Subscribe throughput of picloud-client (Python) beside @picloud/client (TypeScript),
on the same retained log: messages per second from one stream, from the start of the
log (``Last-Event-ID: 0``) to its last message.

Two sources for each client, alternating runs of the two clients:

- ``replay``: the topic's stream as PiCloud sent it, recorded once and then served by a
  bare aiohttp server as fast as the socket takes it, so the figure is the client's own
  (parsing, decoding, typed messages);
- ``picloud``: the live ``picloud serve`` replaying its log from PostgreSQL, where the
  server may be the bound.

Prints JSON. The TypeScript client is built (npm ci, npm run build) when its dist/ is
missing; without Node.js only the Python figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TS = ROOT / "clients" / "typescript"
ADMIN_KEY = "pck_bench_admin_key_0123456789abcdef"
TOPIC = "log"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


# --------------------------------------------------------------------------- consumers


async def consume_python(base_url: str, topic: str, count: int) -> dict[str, Any]:
    from picloud_client import AsyncPiCloud, Message

    seen = 0
    last = 0
    async with AsyncPiCloud(base_url) as pc:
        started = time.perf_counter()
        async with pc.subscribe("127.0.0.1", topic, last_event_id=0) as sub:
            async for event in sub:
                if isinstance(event, Message):
                    seen += 1
                    last = event.id
                    if seen == count:
                        break
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "messages": seen, "last_id": str(last)}


def run_consumer(kind: str, base_url: str, count: int) -> float:
    if kind == "python":
        cmd = [sys.executable, __file__, "--consume", base_url, TOPIC, str(count)]
    else:
        cmd = ["node", str(ROOT / "bench" / "client_subscribe.mjs"), base_url, TOPIC, str(count)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    result = json.loads(done.stdout)
    if result["messages"] != count or result["last_id"] != str(count):
        raise RuntimeError(f"{kind} consumer got {result}")
    return count / float(result["seconds"])


# --------------------------------------------------------------------------- replay server


def replay_server(port: int, recording: Path) -> None:
    from aiohttp import web

    data = recording.read_bytes()

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        view = memoryview(data)
        for start in range(0, len(data), 256 * 1024):
            await response.write(bytes(view[start : start + 256 * 1024]))
        await asyncio.sleep(3600)  # stay open like a live stream; the client hangs up
        return response

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/realtime/topics/{topic}", stream)
    app.router.add_get("/healthz", ready)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def record(base_url: str, count: int, target: Path) -> int:
    """The bytes of the topic's stream from Last-Event-ID 0 up to message ``count``."""
    import httpx

    marker = f"id: {count}\n".encode()
    size = 0
    async with httpx.AsyncClient(timeout=60) as http:
        headers = {"Host": "127.0.0.1", "Last-Event-ID": "0"}
        async with http.stream("GET", f"{base_url}/realtime/topics/{TOPIC}", headers=headers) as r:
            r.raise_for_status()
            buffer = bytearray()
            async for chunk in r.aiter_raw():
                buffer += chunk
                at = buffer.find(marker)
                if at >= 0:
                    end = buffer.index(b"\n\n", at) + 2
                    await asyncio.to_thread(target.write_bytes, bytes(buffer[:end]))
                    size = end
                    break
    return size


# --------------------------------------------------------------------------- set-up


def fill_log(uri: str, count: int) -> str:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO picloud.apps (slug, name) VALUES ('bench', 'bench') RETURNING id"
        ).fetchone()
        assert row is not None
        app_id = str(row[0])
        conn.execute(
            "INSERT INTO picloud.app_domains (host, app_id) VALUES ('127.0.0.1', %s)", (app_id,)
        )
        conn.execute("SELECT picloud.create_topic(%s, %s, true, 'public')", (app_id, TOPIC))
        step = 10_000
        for first in range(1, count + 1, step):
            last = min(count, first + step - 1)
            with conn.transaction():
                conn.execute(
                    "SELECT count(picloud.publish(%s, %s, jsonb_build_object("
                    "'n', g, 'user', 'user-' || (g %% 97), 'text', 'a short chat message')))"
                    " FROM generate_series(%s::int, %s::int) g",
                    (app_id, TOPIC, first, last),
                )
    return app_id


def ensure_typescript_build() -> bool:
    if shutil.which("node") is None:
        return False
    if not (TS / "dist" / "index.js").exists():
        # Their output goes to stderr: stdout is the JSON report.
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=TS,
            check=True,
            stdout=sys.stderr,
        )
        subprocess.run(["npm", "run", "--silent", "build"], cwd=TS, check=True, stdout=sys.stderr)
    return True


def spread(rates: list[float]) -> dict[str, Any]:
    return {
        "runs": [round(r) for r in rates],
        "median": round(statistics.median(rates)),
        "min": round(min(rates)),
        "max": round(max(rates)),
    }


def measure(uri: str, work: Path, count: int, runs: int) -> dict[str, Any]:
    fill_started = time.monotonic()
    fill_log(uri, count)
    fill_s = time.monotonic() - fill_started
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")},
        "DATABASE_URL": uri,
        "PICLOUD_LISTEN": f"127.0.0.1:{port}",
        "PICLOUD_ADMIN_KEY": ADMIN_KEY,
        "PICLOUD_DATA_DIR": str(work / "picloud"),
        "PICLOUD_MIGRATE": "false",
        "PICLOUD_ROLES": "relay",
    }
    with (work / "serve.log").open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "picloud", "--log-level", "WARNING", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    replay: subprocess.Popen[bytes] | None = None
    try:
        picloud_url = f"http://127.0.0.1:{port}"
        wait_http(picloud_url + "/healthz", server)
        recording = work / "log.sse"
        size = asyncio.run(record(picloud_url, count, recording))
        replay_port = free_port()
        replay = subprocess.Popen(
            [sys.executable, __file__, "--replay-server", str(replay_port), str(recording)]
        )
        replay_url = f"http://127.0.0.1:{replay_port}"
        wait_http(replay_url + "/healthz", replay)

        kinds = ["python", "typescript"] if ensure_typescript_build() else ["python"]
        results: dict[str, Any] = {}
        for source, url in (("replay", replay_url), ("picloud", picloud_url)):
            rates: dict[str, list[float]] = {k: [] for k in kinds}
            for _ in range(runs):
                for kind in kinds:  # alternate, so drift in machine load hits both
                    rates[kind].append(run_consumer(kind, url, count))
            figures: dict[str, Any] = {k: spread(v) for k, v in rates.items()}
            if "typescript" in figures:
                figures["python_over_typescript"] = round(
                    figures["python"]["median"] / figures["typescript"]["median"], 2
                )
            results[source] = figures
        return {
            "messages": count,
            "log_bytes": size,
            "fill_seconds": round(fill_s, 1),
            "messages_per_second": results,
            "target_python_replay": 20_000,
        }
    finally:
        if replay is not None:
            replay.kill()  # its streams never end by themselves
            replay.wait(30)
        server.terminate()
        server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="30,000 messages, 2 runs")
    parser.add_argument("--consume", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--replay-server", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consume:
        base_url, topic, count = args.consume
        print(json.dumps(asyncio.run(consume_python(base_url, topic, int(count)))))
        return 0
    if args.replay_server:
        replay_server(int(args.replay_server[0]), Path(args.replay_server[1]))
        return 0
    count, runs = (30_000, 2) if args.quick else (args.messages, args.runs)

    from picloud.embedded import embedded_postgres
    from picloud.migrate import migrate

    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="picloud-bench-", dir=base) as tmp:
        work = Path(tmp)
        with embedded_postgres(work / "pg", cleanup_mode="delete") as uri:
            migrate(uri)
            results = measure(uri, work, count, runs)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0],
        },
        "duration_s": round(time.monotonic() - started, 1),
        **results,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
