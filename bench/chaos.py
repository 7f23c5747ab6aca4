"""Chaos run: faults injected under load on a PostgreSQL cluster of its own, then an
account of what was acknowledged and what arrived.

    .venv/bin/python bench/chaos.py [--short] [--messages 5000] [--subscribers 30]

On this machine over loopback only: a fresh PostgreSQL cluster (15 from
/usr/lib/postgresql/15/bin when installed, else the one bundled with pgserver; run as an
unprivileged OS user when this runs as root), ``picloud serve`` (relay role) and
``picloud dispatcher`` as separate processes, a webhook receiver, resuming SSE subscribers
and HTTP publishers in this process. While the publishers run, the faults come one after
another: the relay's LISTEN backend killed, ``pg_ctl restart -m fast``, ``-m immediate``,
SIGKILL of ``picloud serve`` and of ``picloud dispatcher`` (each restarted at once), and
the topic deleted and created again. Every wait is bounded; the script prints one JSON
document: acknowledged-but-undelivered, duplicates, reorders, 201s without a row, rows
without a 201, deliveries lost and duplicated, and the recovery time after each fault.
``--short`` (about 1,000 messages, every fault once) is what tests/test_chaos.py runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.pg_cluster

from picloud.migrate import migrate
from picloud.realtime.cursor import parse_cursor
from tests.pg_cluster import Cluster, bundled_bindir

ADMIN_KEY = "pck_chaos_admin_key_0123456789abcdef"
PG15 = Path("/usr/lib/postgresql/15/bin")
TOPIC = "chaos"
WEBHOOK_DELAY_SEC = 0.02
FAULTS = (
    "kill_dispatcher",
    "listen_kill",
    "restart_fast",
    "restart_immediate",
    "kill_serve",
    "topic_recreate",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def until(predicate: Any, within: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


# --------------------------------------------------------------------------- processes


class Node:
    """``picloud serve`` or ``picloud dispatcher`` as a process, restartable."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "picloud", *self.args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# --------------------------------------------------------------------------- clients


@dataclass
class Subscriber:
    """A resuming SSE client: reconnects with the last id it saw, records what arrived."""

    url: str
    host: str
    cursor: str | None = None
    seen: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    resets: int = 0
    connects: int = 0

    def has(self, epoch: int, seq: int) -> bool:
        got = self.seen.get(epoch)
        return bool(got) and got[-1] >= seq

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            headers = {"Host": self.host}
            if self.cursor is not None:
                headers["Last-Event-ID"] = self.cursor
            try:
                async with session.get(self.url, headers=headers) as resp:
                    if resp.status == 200:
                        self.connects += 1
                        await self._read(resp, stop)
            except (aiohttp.ClientError, ConnectionError, TimeoutError):
                pass
            await asyncio.sleep(0.05)

    async def _read(self, resp: aiohttp.ClientResponse, stop: asyncio.Event) -> None:
        event, ident = "message", None
        while not stop.is_set():
            raw = await resp.content.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\n")
            if line == "":
                if ident is not None:
                    self.cursor = ident
                    if event == "reset":
                        self.resets += 1
                    elif event == "message":
                        cursor = parse_cursor(ident)
                        assert cursor.epoch is not None
                        self.seen[cursor.epoch].append(cursor.seq)
                event, ident = "message", None
            elif line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("event: "):
                event = line[7:]


@dataclass
class Publisher:
    base: str
    app_id: str
    acked: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    failed: int = 0
    phase: int = 0
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    inflight: int = 0

    async def publish(self, session: aiohttp.ClientSession) -> int | None:
        """One publish; its id when acknowledged (201), else None."""
        url = f"{self.base}/api/v1/apps/{self.app_id}/topics/{TOPIC}/messages"
        body = {"message": {"token": uuid.uuid4().hex}}
        phase = self.phase
        self.inflight += 1
        try:
            async with session.post(
                url, json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as resp:
                data = await resp.read()
                if resp.status == 201:
                    seq = int(json.loads(data)["id"])
                    self.acked[phase].append(seq)
                    return seq
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            pass
        finally:
            self.inflight -= 1
        self.failed += 1
        return None

    def count(self) -> int:
        return sum(len(v) for v in self.acked.values())

    async def run(
        self, session: aiohttp.ClientSession, total: int, rate: float, stop: asyncio.Event
    ) -> None:
        interval = 4 / rate  # four workers

        async def worker() -> None:
            while not stop.is_set() and self.count() < total:
                if self.paused.is_set():
                    await asyncio.sleep(0.02)
                    continue
                started = time.monotonic()
                if await self.publish(session) is None:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

        await asyncio.gather(*(worker() for _ in range(4)))


class Receiver:
    """The webhook: records each delivery id it is called with."""

    def __init__(self) -> None:
        self.calls: Counter[int] = Counter()
        self.last_call = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        delivery = int(request.headers["PiCloud-Delivery-Id"])
        await request.read()
        await asyncio.sleep(WEBHOOK_DELAY_SEC)
        self.calls[delivery] += 1
        self.last_call = time.monotonic()
        return web.Response(status=200)


# --------------------------------------------------------------------------- the run


class Chaos:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        bindir = PG15 if (PG15 / "pg_ctl").exists() else bundled_bindir()
        self.cluster = Cluster(bindir).init()
        self.pg_version = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.receiver = Receiver()
        self.recovery: list[dict[str, Any]] = []
        self.phase_epochs: list[int] = []
        self.rows: dict[int, set[int]] = {}

    def setup(self) -> None:
        self.cluster.start()
        self.db = self.cluster.create_database("picloud")
        migrate(self.db)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PICLOUD_") and k != "DATABASE_URL"
        }
        env.update(
            DATABASE_URL=self.db,
            PICLOUD_ADMIN_KEY=ADMIN_KEY,
            PICLOUD_MIGRATE="false",
            PICLOUD_LISTEN=f"127.0.0.1:{self.port}",
            PICLOUD_DATA_DIR=str(self.work / "data"),
            PICLOUD_REALTIME_HEARTBEAT_SEC="2",
            PICLOUD_DISPATCH_BACKOFF_BASE_MS="100",
            PICLOUD_DISPATCH_BACKOFF_CAP_MS="1000",
            PICLOUD_DISPATCH_LEASE_SEC="5",
            # The webhook receiver is on loopback, which the egress guard refuses by default.
            PICLOUD_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        )
        self.serve = Node(["serve", "--roles", "relay"], env, self.work / "serve.log")
        self.dispatcher = Node(["dispatcher"], env, self.work / "dispatcher.log")

    async def http_ok(self, session: aiohttp.ClientSession, within: float = 60) -> None:
        async def ready() -> bool:
            try:
                async with session.get(self.base + "/healthz") as resp:
                    return resp.status == 200
            except (aiohttp.ClientError, ConnectionError, TimeoutError):
                return False

        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await ready():
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("picloud serve did not become healthy")

    async def api(self, session: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> Any:
        async with session.request(
            method, self.base + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, **kw
        ) as resp:
            body = await resp.read()
            assert resp.status < 300, (method, path, resp.status, body)
            return json.loads(body) if body else None

    def epoch(self) -> int:
        with psycopg.connect(self.db) as conn:
            row = conn.execute(
                "SELECT epoch FROM picloud.topics WHERE app_id = %s AND name = %s",
                (self.app_id, TOPIC),
            ).fetchone()
            assert row is not None
            return int(row[0])

    def row_seqs(self) -> set[int]:
        with psycopg.connect(self.db) as conn:
            rows = conn.execute(
                "SELECT seq FROM picloud.messages WHERE app_id = %s AND topic = %s",
                (self.app_id, TOPIC),
            ).fetchall()
        return {int(r[0]) for r in rows}

    async def run(self) -> dict[str, Any]:
        args = self.args
        receiver_app = web.Application()
        receiver_app.router.add_post("/hook", self.receiver.handle)
        hook_runner = web.AppRunner(receiver_app, access_log=None)
        await hook_runner.setup()
        hook_port = free_port()
        await web.TCPSite(hook_runner, "127.0.0.1", hook_port).start()
        self.serve.start()
        timeout = aiohttp.ClientTimeout(total=10)
        stream_timeout = aiohttp.ClientTimeout(total=None, sock_read=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            aiohttp.ClientSession(
                timeout=stream_timeout, connector=aiohttp.TCPConnector(limit=0)
            ) as streams,
        ):
            await self.http_ok(session)
            app = await self.api(
                session, "POST", "/api/v1/apps", json={"slug": "chaos", "name": "c"}
            )
            self.app_id = app["id"]
            await self.create_topic(session)
            hook = await self.api(
                session,
                "POST",
                f"/api/v1/apps/{self.app_id}/handlers",
                json={
                    "name": "hook",
                    "kind": "webhook",
                    "url": f"http://127.0.0.1:{hook_port}/hook",
                    "secret": "s" * 32,
                    "timeout_ms": 5000,
                },
            )
            await self.api(
                session,
                "POST",
                f"/api/v1/apps/{self.app_id}/triggers",
                json={
                    "name": "all",
                    "source": "pubsub",
                    "filter": {},
                    "handler_id": hook["id"],
                    "max_attempts": 25,
                },
            )
            # A webhook backlog for the dispatcher to drain while it is killed.
            with psycopg.connect(self.db) as conn:
                conn.execute("SELECT picloud.create_topic(%s, 'backlog')", (self.app_id,))
                conn.execute(
                    "SELECT picloud.publish(%s, 'backlog', to_jsonb(n))"
                    " FROM generate_series(1, %s) n",
                    (self.app_id, args.backlog),
                )
            self.phase_epochs.append(self.epoch())
            self.dispatcher.start()

            stop_subs = asyncio.Event()
            host = f"chaos.localhost:{self.port}"
            subs = [
                Subscriber(f"{self.base}/realtime/topics/{TOPIC}", host)
                for _ in range(args.subscribers)
            ]
            sub_tasks = [asyncio.create_task(s.run(streams, stop_subs)) for s in subs]
            await until(lambda: all(s.connects for s in subs), 30)

            publisher = Publisher(self.base, self.app_id)
            stop_pub = asyncio.Event()
            pub_task = asyncio.create_task(
                publisher.run(session, args.messages, args.rate, stop_pub)
            )
            self.subs, self.publisher = subs, publisher
            step = args.messages // (len(FAULTS) + 1)
            for i, fault in enumerate(FAULTS, start=1):
                await until(lambda i=i: publisher.count() >= step * i or pub_task.done(), 120)
                await self.inject(fault, session)
            await asyncio.wait_for(pub_task, 300)

            # Let everything arrive: every acknowledged message at every subscriber, every
            # delivery at the receiver (bounded waits; what is missing then is counted).
            epoch = self.phase_epochs[-1]
            last = max(publisher.acked[len(self.phase_epochs) - 1], default=0)
            await until(lambda: all(s.has(epoch, last) for s in subs), 30)
            self.rows[len(self.phase_epochs) - 1] = self.row_seqs()
            await until(self.deliveries_settled, 60, step=0.2)
            stop_subs.set()
            for task in sub_tasks:
                task.cancel()
            await asyncio.gather(*sub_tasks, return_exceptions=True)
        self.dispatcher.kill(signal.SIGTERM)
        self.serve.kill(signal.SIGTERM)
        await hook_runner.cleanup()
        return self.report()

    async def create_topic(self, session: aiohttp.ClientSession) -> None:
        await self.api(
            session,
            "POST",
            f"/api/v1/apps/{self.app_id}/topics",
            json={"name": TOPIC, "external_subscribable": True, "auth_mode": "public"},
        )

    def deliveries_settled(self) -> bool:
        with psycopg.connect(self.db) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE status NOT IN ('done', 'dead'))"
                " FROM picloud.deliveries"
            ).fetchone()
        return row is not None and row[0] == 0

    # -- faults ----------------------------------------------------------------------

    async def inject(self, fault: str, session: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        back = started  # when the faulty part is back (database up, process started)
        if fault == "listen_kill":
            with psycopg.connect(self.db, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name LIKE 'picloud relay %'"
                )
        elif fault in ("restart_fast", "restart_immediate"):
            mode = fault.removeprefix("restart_")
            await asyncio.to_thread(self.cluster.stop, mode)
            await asyncio.sleep(self.args.outage)
            await asyncio.to_thread(self.cluster.start)
            back = time.monotonic()
        elif fault == "kill_serve":
            self.serve.kill()
            self.serve.start()
            back = time.monotonic()
        elif fault == "kill_dispatcher":
            self.dispatcher.kill()
            self.dispatcher.start()
            back = time.monotonic()
        elif fault == "topic_recreate":
            # Quiesce: everything of this incarnation delivered, then delete + create.
            self.publisher.paused.set()
            await until(lambda: self.publisher.inflight == 0, 10)
            phase = len(self.phase_epochs) - 1
            epoch = self.phase_epochs[-1]
            last = max(self.publisher.acked[phase], default=0)
            await until(lambda: all(s.has(epoch, last) for s in self.subs), 30)
            self.rows[phase] = self.row_seqs()
            started = back = time.monotonic()
            await self.api(session, "DELETE", f"/api/v1/apps/{self.app_id}/topics/{TOPIC}")
            await self.create_topic(session)
            self.phase_epochs.append(self.epoch())
            self.publisher.phase = phase + 1
            self.publisher.paused.clear()
        entry: dict[str, Any] = {"fault": fault, "outage_s": round(back - started, 3)}
        # Recovered: a publish is acknowledged, and every subscriber has received it.
        while True:
            seq = await self.publisher.publish(session)
            if seq is not None:
                break
            if time.monotonic() - back > 60:
                entry["publish_s"] = None
                self.recovery.append(entry)
                return
            await asyncio.sleep(0.02)
        entry["publish_s"] = round(time.monotonic() - back, 3)
        epoch = self.phase_epochs[-1]
        ok = await until(lambda: all(s.has(epoch, seq) for s in self.subs), 30)
        entry["delivered_s"] = round(time.monotonic() - back, 3) if ok else None
        if fault == "kill_dispatcher":
            before = self.receiver.last_call
            ok = await until(lambda: self.receiver.last_call > before, 30)
            entry["webhook_s"] = round(self.receiver.last_call - back, 3) if ok else None
        self.recovery.append(entry)

    # -- the account -----------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        undelivered = duplicates = reorders = 0
        without_reset = 0
        for sub in self.subs:
            for phase, epoch in enumerate(self.phase_epochs):
                got = sub.seen.get(epoch, [])
                counts = Counter(got)
                duplicates += sum(c - 1 for c in counts.values())
                reorders += sum(1 for a, b in itertools.pairwise(got) if b < a)
                undelivered += len(set(self.publisher.acked[phase]) - set(got))
            if len(self.phase_epochs) > 1 and sub.resets == 0:
                without_reset += 1
        acked = {p: set(v) for p, v in self.publisher.acked.items()}
        no_row = sum(len(acked.get(p, set()) - rows) for p, rows in self.rows.items())
        no_201 = sum(len(rows - acked.get(p, set())) for p, rows in self.rows.items())
        with psycopg.connect(self.db) as conn:
            deliveries = {
                int(r[0]): str(r[1])
                for r in conn.execute("SELECT id, status FROM picloud.deliveries").fetchall()
            }
        calls = self.receiver.calls
        lost = sum(1 for d in deliveries if calls[d] == 0)
        self.cluster.destroy()
        return {
            "postgresql": self.pg_version,
            "messages_acknowledged": self.publisher.count(),
            "publish_attempts_failed": self.publisher.failed,
            "subscribers": len(self.subs),
            "messages_received": sum(len(v) for sub in self.subs for v in sub.seen.values()),
            "subscriber_reconnects": sum(sub.connects - 1 for sub in self.subs),
            "acknowledged_but_undelivered": undelivered,
            "duplicates": duplicates,
            "reorders": reorders,
            "subscribers_without_reset": without_reset,
            "acknowledged_without_row": no_row,
            "rows_without_201": no_201,
            "deliveries": len(deliveries),
            "deliveries_lost": lost,
            "deliveries_not_done": sum(1 for s in deliveries.values() if s != "done"),
            "duplicate_deliveries": sum(c - 1 for c in calls.values() if c > 1),
            "recovery": self.recovery,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="about 1,000 messages, < 60 s")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--subscribers", type=int, default=30)
    parser.add_argument("--rate", type=float, default=200.0, help="publishes per second")
    parser.add_argument("--backlog", type=int, default=3000, help="webhook deliveries queued")
    parser.add_argument("--outage", type=float, default=1.0, help="seconds the database is down")
    args = parser.parse_args()
    if args.short:
        args.messages, args.subscribers, args.rate, args.backlog = 1000, 10, 150.0, 500
        args.outage = 0.5
    import tempfile

    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="picloud-chaos-", dir=base) as tmp:
        chaos = Chaos(Path(tmp), args)
        try:
            chaos.setup()
            result = asyncio.run(chaos.run())
        finally:
            with contextlib.suppress(Exception):
                chaos.dispatcher.kill()
                chaos.serve.kill()
            chaos.cluster.destroy()
    report = {
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
        "duration_s": round(time.monotonic() - started, 1),
        **result,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
