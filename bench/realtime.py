"""Realtime benchmark: publish throughput (single and batched), publish->receive and doc
PUT->live-collection latency, burst fan-out and memory per idle SSE connection; and for
multiplexed streams and presence: latency with 10 topics per stream, memory per idle
multiplexed connection, and presence joins seen on another node — each beside a
reference measured in the same run.

    .venv/bin/python bench/realtime.py [--quick] [--connections 5000]
        [--only multiplex|publishing] [--rounds 3] [--target embedded|durable]

Everything runs on this machine over loopback: an embedded PostgreSQL in a temporary
directory (or, with ``--target durable``, a throwaway PostgreSQL 15 cluster with fsync on
and its data on disk, where every commit pays its flush; bench/targets.py), ``picloud
serve`` as a separate process, a bare aiohttp SSE server (the reference ceiling for
fan-out) as another, and the load generator (this process). Every
loop is bounded by a duration or a count and a timeout; the script stops by itself and
prints one JSON document. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg

ADMIN_KEY = "pck_bench_admin_key_0123456789abcdef"
SSE_CLIENT_PACE = 500  # connections opened per batch


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used by the server process and by this (load generator) process, in % of one core."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.wall = time.monotonic()
        self.server = cpu_seconds(server_pid)
        self.own = time.process_time()

    def report(self) -> dict[str, float]:
        wall = time.monotonic() - self.wall
        return {
            "server_cpu_pct": round(100 * (cpu_seconds(self.server_pid) - self.server) / wall, 1),
            "load_generator_cpu_pct": round(100 * (time.process_time() - self.own) / wall, 1),
        }


def raise_nofile() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --------------------------------------------------------------------------- SSE client


class SseClient(asyncio.Protocol):
    """A light SSE reader (asyncio protocol): counts ids, gaps, duplicates and latency."""

    def __init__(self, host: str, path: str, latencies: list[float] | None) -> None:
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.latencies = latencies
        # A multiplexed stream's id is one opaque cursor for all its topics: there, the
        # message's own per-topic counter "k" is what is checked for gaps and repeats.
        self.multiplexed = path.startswith("/realtime?")
        self.per_topic: dict[str, int] = {}
        self.buf = b""
        self.headers_done = False
        self.opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.last = 0
        self.received = 0
        self.lost = 0
        self.duplicated = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result(0)
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf + data
        if not self.headers_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            status = int(buf.split(b" ", 2)[1])
            self.headers_done = True
            buf = buf[end + 4 :]
            if not self.opened.done():
                self.opened.set_result(status)
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self.buf = buf
            return
        block, self.buf = buf[:cut], buf[cut + 2 :]
        if self.multiplexed:
            self._multiplexed(block, now)
            return
        for line in block.split(b"\n"):
            if line.startswith(b"id: "):
                # The message number: the last part of a resume cursor (v1.<epoch>.<seq>),
                # or the whole id of the bare reference server (cheaper than parsing it).
                seq = int(line[4:].rpartition(b".")[2])
                if seq <= self.last:
                    self.duplicated += 1
                    continue
                self.lost += seq - self.last - 1
                self.last = seq
                self.received += 1
            elif line.startswith(b"data: ") and self.latencies is not None:
                message = orjson.loads(line[6:])["message"]
                # A published message carries the stamp; a live collection's doc event
                # carries it in the document's data.
                stamp = message["t"] if "t" in message else message["data"]["t"]
                self.latencies.append(now - stamp)

    def _multiplexed(self, block: bytes, now: float) -> None:
        for line in block.split(b"\n"):
            if not line.startswith(b"data: "):
                continue
            frame = orjson.loads(line[6:])
            message = frame.get("message")
            if not isinstance(message, dict) or "k" not in message:
                continue  # a cursor-only frame, or presence
            topic, k = frame["topic"], message["k"]
            last = self.per_topic.get(topic, 0)
            if k <= last:
                self.duplicated += 1
                continue
            self.lost += k - last - 1
            self.per_topic[topic] = k
            self.received += 1
            if self.latencies is not None:
                self.latencies.append(now - message["t"])

    def missing(self, sent: int) -> int:
        """Messages of the ``sent`` so far that never arrived (gaps and the tail)."""
        if self.multiplexed:
            return sent - self.received
        return self.lost + (sent - self.last)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class PresenceWatcher(asyncio.Protocol):
    """One SSE stream of a presence topic: when each subject's join arrived."""

    def __init__(self, host: str, path: str) -> None:
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.buf = b""
        self.joined: dict[str, float] = {}
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.opened.done():
            self.opened.set_result(None)
        buf = self.buf + data
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self.buf = buf
            return
        block, self.buf = buf[:cut], buf[cut + 2 :]
        for line in block.split(b"\n"):
            if line.startswith(b'data: {"topic"') and b'"event":"joined"' in line:
                self.joined.setdefault(orjson.loads(line[6:])["subject"], now)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_clients(
    port: int, host: str, path: str, count: int, latencies: list[float] | None = None
) -> list[SseClient]:
    loop = asyncio.get_running_loop()
    clients: list[SseClient] = []
    for start in range(0, count, SSE_CLIENT_PACE):
        batch = []
        for _ in range(min(SSE_CLIENT_PACE, count - start)):
            client = SseClient(host, path, latencies)
            batch.append(client)
            await loop.create_connection(lambda c=client: c, "127.0.0.1", port)  # type: ignore[misc]
        async with asyncio.timeout(60):
            statuses = await asyncio.gather(*(c.opened for c in batch))
        if any(s != 200 for s in statuses):
            raise RuntimeError(f"subscribe failed: {sorted(set(statuses))}")
        clients += batch
    # PiCloud registers a stream before its headers and ':ok' go out: all are live now.
    return clients


async def poll_until(predicate: Any, within: float, step: float = 0.05) -> bool:
    for _ in range(int(within / step) + 1):
        if predicate():
            return True
        await asyncio.sleep(step)
    return False


async def close_clients(clients: list[SseClient]) -> None:
    for c in clients:
        c.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            await asyncio.gather(*(c.closed for c in clients))


# --------------------------------------------------------------------------- environment


class Bench:
    def __init__(self, work: Path, pg_uri: str, quick: bool) -> None:
        self.work = work
        self.pg_uri = pg_uri
        self.quick = quick
        self.duration = 2.0 if quick else 4.0
        self.app_id: uuid.UUID | None = None
        self.key = ""
        self.port = 0
        self.server: subprocess.Popen[bytes] | None = None
        self.http_cpu: dict[str, float] = {}
        self.serial = 0  # makes topic names unique within a run

    def setup(self) -> None:
        with psycopg.connect(self.pg_uri, autocommit=True) as conn:
            row = conn.execute(
                "INSERT INTO picloud.apps (slug, name) VALUES ('bench', 'bench') RETURNING id"
            ).fetchone()
            assert row is not None
            self.app_id = row[0]
            key = conn.execute(
                "SELECT key FROM picloud.create_api_key(%s, 'bench', ARRAY['app:admin'])",
                (self.app_id,),
            ).fetchone()
            assert key is not None
            self.key = key[0]
            conn.execute(
                "CREATE TABLE IF NOT EXISTS public.bench_raw (id bigserial PRIMARY KEY,"
                " topic text NOT NULL, message jsonb NOT NULL,"
                " published_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            )

    def fresh(self, name: str) -> str:
        """``name`` made unique in this run (a topic of its own for each measurement)."""
        self.serial += 1
        return f"{name}_{self.serial}"

    def topic(self, name: str) -> str:
        with psycopg.connect(self.pg_uri, autocommit=True) as conn:
            conn.execute("SELECT picloud.create_topic(%s, %s, true, 'public')", (self.app_id, name))
        return name

    @contextlib.contextmanager
    def picloud(self, capacity: int, **extra: str) -> Iterator[int]:
        with self.node(capacity, **extra) as (pid, port):
            self.port = port
            yield pid

    @contextlib.contextmanager
    def node(self, capacity: int, **extra: str) -> Iterator[tuple[int, int]]:
        """A ``picloud serve`` process (relay role) on the bench database: (pid, port)."""
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")},
            "DATABASE_URL": self.pg_uri,
            "PICLOUD_LISTEN": f"127.0.0.1:{port}",
            "PICLOUD_ADMIN_KEY": ADMIN_KEY,
            "PICLOUD_DATA_DIR": str(self.work / "picloud"),
            "PICLOUD_MIGRATE": "false",
            "PICLOUD_ROLES": "relay",
            "PICLOUD_REALTIME_BROADCAST_CAPACITY": str(capacity),
            # One load generator opens thousands of streams from one address, in bursts.
            "PICLOUD_REALTIME_MAX_SUBSCRIBERS_PER_CLIENT": "100000",
            "PICLOUD_REALTIME_MAX_SUBSCRIBERS_PER_APP": "100000",
            "PICLOUD_DB_ACQUIRE_TIMEOUT_MS": "30000",
            **extra,
        }
        log = (self.work / "serve.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "picloud", "--log-level", "WARNING", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.server = proc
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            yield proc.pid, port
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    @contextlib.contextmanager
    def bare_server(self) -> Iterator[int]:
        port = free_port()
        proc = subprocess.Popen([sys.executable, __file__, "--bare-server", str(port)])
        try:
            wait_http(f"http://127.0.0.1:{port}/ready", proc)
            yield port
        finally:
            proc.terminate()
            proc.wait(30)

    # ----------------------------------------------------------------------- publish

    def _threads(self, work: Any, count: int = 4) -> float:
        """Run ``work(conn, deadline) -> n`` on ``count`` connections; total per second."""
        done: list[int] = []
        barrier = threading.Barrier(count + 1)

        def run(i: int) -> None:
            with psycopg.connect(self.pg_uri, autocommit=True) as conn:
                barrier.wait()
                done.append(work(conn, i, time.monotonic() + self.duration))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        barrier.wait()
        started = time.monotonic()
        for t in threads:
            t.join(self.duration + 60)
        return sum(done) / (time.monotonic() - started)

    def raw_insert_notify(self) -> float:
        def work(conn: psycopg.Connection[Any], i: int, deadline: float) -> int:
            cur = psycopg.ClientCursor(conn)
            n = 0
            while time.monotonic() < deadline:
                cur.execute(
                    "INSERT INTO public.bench_raw (topic, message) VALUES (%s, %s::jsonb);"
                    " SELECT pg_notify('bench_raw', %s)",
                    (f"raw{i}", '{"n": 1}', f"raw{i} {n}"),
                )
                n += 1
            return n

        return self._threads(work)

    def sql_publish(self, topics: list[str]) -> float:
        app_id = self.app_id

        def work(conn: psycopg.Connection[Any], i: int, deadline: float) -> int:
            topic = topics[i % len(topics)]
            n = 0
            while time.monotonic() < deadline:
                conn.execute(
                    "SELECT picloud.publish(%s, %s, %s::jsonb)", (app_id, topic, '{"n": 1}')
                )
                n += 1
            return n

        return self._threads(work)

    async def http_publish(self, topics: list[str], batch: int = 0) -> float:
        """Messages/s over 4 keep-alive connections, one request in flight on each (a
        minimal client, so the load generator takes as little of the shared CPU as it
        can); ``batch`` > 0 sends that many messages per request ({"messages": [...]})."""
        if batch:
            body = orjson.dumps({"messages": [{"n": i} for i in range(batch)]})
        else:
            body = b'{"message": {"n": 1}}'
        per_request = batch or 1
        count = 0
        deadline = time.monotonic() + self.duration

        async def worker(i: int) -> None:
            nonlocal count
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            request = (
                f"POST /api/v1/apps/{self.app_id}/topics/{topics[i % len(topics)]}/messages"
                f" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            try:
                while time.monotonic() < deadline:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    if not head.startswith(b"HTTP/1.1 201"):
                        raise RuntimeError(f"publish answered {head[:40]!r}")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
                    count += per_request
            finally:
                writer.close()

        assert self.server is not None
        meter = CpuMeter(self.server.pid)
        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(4)))
        self.http_cpu = meter.report()
        return count / (time.monotonic() - started)

    def live_collection(self, name: str) -> str:
        """A topic fed by a topic handler from the docs collection of the same name."""
        topic = self.topic(name)
        with psycopg.connect(self.pg_uri, autocommit=True) as conn:
            row = conn.execute(
                "INSERT INTO picloud.handlers (app_id, name, kind, topic)"
                " VALUES (%s, %s, 'topic', %s) RETURNING id",
                (self.app_id, name, topic),
            ).fetchone()
            assert row is not None
            conn.execute(
                "INSERT INTO picloud.triggers (app_id, name, source, filter, handler_id)"
                " VALUES (%s, %s, 'docs', jsonb_build_object('match', %s::text), %s)",
                (self.app_id, name, name, row[0]),
            )
        return topic

    async def doc_put_sender(self, collection: str, took: list[float]) -> tuple[Any, Any]:
        """A function sending ``PUT …/collections/{c}/docs/d<n>`` {"t": now} over one
        keep-alive connection, appending each request's round trip to ``took`` (and the
        function that closes the connection)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def send(n: int) -> None:
            sent_at = time.time()
            body = orjson.dumps({"t": sent_at, "n": n})
            writer.write(
                (
                    f"PUT /api/v1/apps/{self.app_id}/collections/{collection}/docs/d{n}"
                    f" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.key}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 201")):
                raise RuntimeError(f"doc PUT answered {head[:40]!r}")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":")[1]))
            took.append(time.time() - sent_at)

        async def close() -> None:
            writer.close()

        return send, close

    # ----------------------------------------------------------------------- latency

    async def latency(
        self,
        subscribers: int,
        rate: float = 50.0,
        workers: int = 2,
        collection: str = "",
        topics: int = 0,
    ) -> dict[str, Any]:
        """Subscribers live in ``workers`` load-generator processes (one Python process
        cannot parse 50,000 frames/s and also keep time); the publisher lives here. With a
        ``collection``, the publisher PUTs documents over HTTP instead and the subscribers
        follow the collection's live topic (a topic handler of a docs trigger). With
        ``topics``, each subscriber holds one multiplexed stream of that many topics and the
        publishes go round the topics in turn."""
        if topics:
            names = [self.topic(self.fresh(f"mux{subscribers}")) for _ in range(topics)]
            topic = names[0]
            path = "/realtime?" + "&".join(f"topic={t}" for t in names)
        else:
            fresh = self.fresh(f"lat{subscribers}")
            topic = self.live_collection(collection) if collection else self.topic(fresh)
            names = [topic]
            path = f"/realtime/topics/{topic}"
        host = f"bench.localhost:{self.port}"
        procs = []
        for i in range(workers):
            count = subscribers // workers + (1 if i < subscribers % workers else 0)
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--latency-worker",
                    str(self.port),
                    host,
                    path,
                    str(count),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    limit=256 * 1024 * 1024,  # the report is one long JSON line
                )
            )
        try:
            for proc in procs:
                assert proc.stdout is not None
                ready = await asyncio.wait_for(proc.stdout.readline(), 120)
                if ready.strip() != b"ready":
                    raise RuntimeError(f"latency worker failed: {ready!r}")
            duration = self.duration + 1
            sent = 0
            requests: list[float] = []  # doc PUT round trips (live collections)
            assert self.server is not None
            meter = CpuMeter(self.server.pid)
            async with await psycopg.AsyncConnection.connect(self.pg_uri, autocommit=True) as conn:

                async def sql_send(n: int) -> None:
                    # "k": the message's number in its topic (names[n % len]) from 1.
                    k = n // len(names) + 1
                    message = orjson.dumps({"t": time.time(), "n": n, "k": k}).decode()
                    await conn.execute(
                        "SELECT picloud.publish(%s, %s, %s::jsonb)",
                        (self.app_id, names[n % len(names)], message),
                    )

                async def nothing() -> None:
                    return None

                send, close = (
                    await self.doc_put_sender(collection, requests)
                    if collection
                    else (sql_send, nothing)
                )
                started = time.monotonic()
                while True:
                    due = started + sent / rate
                    if due - started >= duration:
                        break
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await send(sent)
                    sent += 1
                wall = time.monotonic() - started
                achieved = sent / wall
                cpu = meter.report()
                await close()
            results = []
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(f"stop {sent}\n".encode())
                await proc.stdin.drain()
            for proc in procs:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                results.append(json.loads(line))
        finally:
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        latencies = [x for r in results for x in r["latencies"]]
        cpu["load_generator_cpu_pct"] = round(
            100 * sum(r["cpu_s"] for r in results) / wall + cpu["load_generator_cpu_pct"], 1
        )
        return {
            "subscribers": subscribers,
            "topics_per_stream": topics or 1,
            "publisher": "doc PUT over HTTP -> topic handler" if collection else "SQL publish",
            "load_generator_processes": workers,
            "publishes": sent,
            "publish_rate_per_s": round(achieved, 1),
            "deliveries": len(latencies),
            "p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "max_ms": round(max(latencies) * 1000, 2) if latencies else None,
            "lost": sum(r["lost"] for r in results),
            "duplicated": sum(r["duplicated"] for r in results),
            **cpu,
            **(
                {
                    "put_round_trip_p50_ms": round(percentile(requests, 50) * 1000, 2),
                    "put_round_trip_p99_ms": round(percentile(requests, 99) * 1000, 2),
                }
                if requests
                else {}
            ),
        }

    # ----------------------------------------------------------------------- fan-out

    async def burst_picloud(self, subscribers: int, burst: int, one_by_one: bool = False) -> float:
        """All messages committed at once (or each in its own transaction, back to back)."""
        topic = self.topic(f"burst{subscribers}{'s' if one_by_one else ''}")
        clients = await open_clients(
            self.port, f"bench.localhost:{self.port}", f"/realtime/topics/{topic}", subscribers
        )
        with psycopg.connect(self.pg_uri, autocommit=one_by_one) as conn:
            started = time.monotonic()
            for n in range(burst):
                conn.execute(
                    "SELECT picloud.publish(%s, %s, %s::jsonb)",
                    (self.app_id, topic, orjson.dumps({"t": 0, "n": n}).decode()),
                )
            if not one_by_one:
                started = time.monotonic()
                conn.commit()  # everything becomes deliverable at once
        elapsed = await self._wait_all(clients, burst, started)
        await close_clients(clients)
        return subscribers * burst / elapsed

    async def burst_bare(self, port: int, subscribers: int, burst: int) -> float:
        clients = await open_clients(port, "bare", "/sse", subscribers)
        started = time.monotonic()
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST /burst?n={burst} HTTP/1.1\r\nHost: bare\r\nContent-Length: 0\r\n\r\n".encode()
        )
        await writer.drain()
        elapsed = await self._wait_all(clients, burst, started)
        writer.close()
        await close_clients(clients)
        return subscribers * burst / elapsed

    @staticmethod
    async def _wait_all(clients: list[SseClient], burst: int, started: float) -> float:
        def all_done() -> bool:
            behind = [c for c in clients if c.received < burst]
            if behind and all(c.closed.done() for c in behind):
                raise RuntimeError("subscribers were disconnected during the burst")
            return not behind

        if not await poll_until(all_done, within=120, step=0.002):
            raise RuntimeError("the burst did not arrive within 120 s")
        return time.monotonic() - started

    # ----------------------------------------------------------------------- memory

    async def memory(self, server_pid: int, connections: int, topics: int = 0) -> dict[str, Any]:
        """Server RSS growth per idle stream: of one topic, or (``topics``) a multiplexed
        stream of that many topics."""
        if topics:
            names = [self.topic(self.fresh(f"idle{topics}")) for _ in range(topics)]
            path = "/realtime?" + "&".join(f"topic={t}" for t in names)
        else:
            path = f"/realtime/topics/{self.topic(self.fresh('idle'))}"
        # Warm up (one subscription through every code path), then measure the growth.
        await close_clients(await open_clients(self.port, f"bench.localhost:{self.port}", path, 10))
        await asyncio.sleep(1)
        before = rss_kib(server_pid)
        clients = await open_clients(self.port, f"bench.localhost:{self.port}", path, connections)
        await asyncio.sleep(1)
        after = rss_kib(server_pid)
        await close_clients(clients)
        return {
            "connections": connections,
            "topics_per_stream": topics or 1,
            "server_rss_before_kib": before,
            "server_rss_after_kib": after,
            "kib_per_connection": round((after - before) / connections, 2),
        }

    # ----------------------------------------------------------------------- presence

    def presence_topic(self, name: str, tokens: int) -> list[str]:
        """A public presence topic, and ``tokens`` subscriber tokens for it (subjects s0…)."""
        with psycopg.connect(self.pg_uri, autocommit=True) as conn:
            conn.execute("SELECT picloud.create_topic(%s, %s, true, 'public')", (self.app_id, name))
            conn.execute(
                "UPDATE picloud.topics SET presence = true WHERE app_id = %s AND name = %s",
                (self.app_id, name),
            )
            rows = conn.execute(
                "SELECT picloud.subscriber_token(%s, ARRAY[%s], '1 hour', 's' || i)"
                " FROM generate_series(0, %s - 1) i ORDER BY i",
                (self.app_id, name, tokens),
            ).fetchall()
        return [r[0] for r in rows]

    async def presence_join(self, present: int, joins: int) -> dict[str, Any]:
        """Two nodes; ``present`` subjects connected to a presence topic (half on each);
        then ``joins`` more subjects join one at a time on node A while a stream on node B
        times each one's join frame (from the moment its connection is opened). Beside it,
        the same run's publish -> receive latency of a message to a stream on node B."""
        loop = asyncio.get_running_loop()
        tokens = self.presence_topic("pres", present + joins)
        ref_topic = self.topic("xnode")
        with self.node(64) as (_pid_a, port_a), self.node(64) as (pid_b, port_b):
            ports = (port_a, port_b)
            clients: list[SseClient] = []
            for start in range(0, present, SSE_CLIENT_PACE):
                batch = []
                for i in range(start, min(present, start + SSE_CLIENT_PACE)):
                    port = ports[i % 2]
                    client = SseClient(
                        f"bench.localhost:{port}", f"/realtime/topics/pres?token={tokens[i]}", None
                    )
                    batch.append(client)
                    await loop.create_connection(lambda c=client: c, "127.0.0.1", port)  # type: ignore[misc]
                async with asyncio.timeout(60):
                    statuses = await asyncio.gather(*(c.opened for c in batch))
                if any(s != 200 for s in statuses):
                    raise RuntimeError(f"subscribe failed: {sorted(set(statuses))}")
                clients += batch
            watcher = PresenceWatcher(f"bench.localhost:{port_b}", "/realtime/topics/pres")
            await loop.create_connection(lambda: watcher, "127.0.0.1", port_b)
            if not await poll_until(lambda: len(watcher.joined) >= present, within=120):
                raise RuntimeError(f"only {len(watcher.joined)} of {present} subjects seen")
            assert self.server is not None
            meter = CpuMeter(pid_b)
            took: list[float] = []
            for j in range(joins):
                subject = f"s{present + j}"
                client = SseClient(
                    f"bench.localhost:{port_a}",
                    f"/realtime/topics/pres?token={tokens[present + j]}",
                    None,
                )
                started = time.time()
                await loop.create_connection(lambda c=client: c, "127.0.0.1", port_a)  # type: ignore[misc]
                clients.append(client)
                if not await poll_until(lambda s=subject: s in watcher.joined, 10, step=0.0005):
                    raise RuntimeError(f"{subject} was not seen joining on the other node")
                took.append(watcher.joined[subject] - started)
            cpu = meter.report()
            # The reference: messages to a stream on node B, published in SQL.
            latencies: list[float] = []
            ref = await open_clients(
                port_b, f"bench.localhost:{port_b}", f"/realtime/topics/{ref_topic}", 1, latencies
            )
            async with await psycopg.AsyncConnection.connect(self.pg_uri, autocommit=True) as conn:
                for n in range(joins):
                    message = orjson.dumps({"t": time.time(), "n": n}).decode()
                    await conn.execute(
                        "SELECT picloud.publish(%s, %s, %s::jsonb)",
                        (self.app_id, ref_topic, message),
                    )
                    await asyncio.sleep(0.02)
            await poll_until(lambda: len(latencies) >= joins, within=10)
            watcher.close()
            await close_clients(clients + ref)
        return {
            "present_subjects": present,
            "joins_timed": joins,
            "join_seen_on_other_node_p50_ms": round(percentile(took, 50) * 1000, 2),
            "join_seen_on_other_node_p99_ms": round(percentile(took, 99) * 1000, 2),
            "join_seen_on_other_node_max_ms": round(max(took) * 1000, 2),
            "reference_message_to_other_node_p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "reference_message_to_other_node_p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "node_b_cpu_pct_during_joins": cpu["server_cpu_pct"],
            "target_p99_ms": "<= 250",
        }


# --------------------------------------------------------------------------- latency worker


async def latency_worker(port: int, host: str, path: str, count: int) -> None:
    """Hold ``count`` subscribers; on 'stop <sent>' from stdin, report as one JSON line."""
    latencies: list[float] = []
    clients = await open_clients(port, host, path, count, latencies)
    cpu_start = time.process_time()
    print("ready", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    cpu_s = time.process_time() - cpu_start
    sent = int(line.split()[1])
    await poll_until(
        lambda: all(c.missing(sent) <= 0 for c in clients if not c.closed.done()), within=10
    )
    result = {
        "latencies": latencies,
        "lost": sum(c.missing(sent) for c in clients),
        "duplicated": sum(c.duplicated for c in clients),
        "cpu_s": cpu_s,
    }
    print(json.dumps(result), flush=True)
    await close_clients(clients)


# --------------------------------------------------------------------------- bare server


def bare_server(port: int) -> None:
    """The reference: a bare aiohttp SSE server writing one pre-encoded frame to each client."""
    from aiohttp import web

    clients: set[web.StreamResponse] = set()

    async def sse(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b":ok\n\n")
        clients.add(resp)
        try:
            await asyncio.Event().wait()
        finally:
            clients.discard(resp)
        return resp

    async def burst(request: web.Request) -> web.Response:
        n = int(request.query["n"])
        for seq in range(1, n + 1):
            data = orjson.dumps(
                {"topic": "bare", "message": {"t": 0, "n": seq}, "published_at": "x"}
            )
            frame = b"id: %d\ndata: %b\n\n" % (seq, data)
            for resp in list(clients):
                await resp.write(frame)
        return web.Response(text="ok")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/sse", sse)
    app.router.add_post("/burst", burst)
    app.router.add_get("/ready", ready)
    web.run_app(
        app, host="127.0.0.1", port=port, print=None, access_log=None, handler_cancellation=True
    )


# --------------------------------------------------------------------------- main


async def measure(bench: Bench, connections: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pub_topics = [bench.topic(f"pub{i}") for i in range(4)]
    raw = bench.raw_insert_notify()
    sql = bench.sql_publish(pub_topics)
    sql_one = bench.sql_publish(pub_topics[:1])
    fanout_subs, burst = 1000, (20 if bench.quick else 50)
    with bench.picloud(capacity=max(64, burst)) as server_pid:
        http = await bench.http_publish(pub_topics)
        http_cpu = bench.http_cpu
        http_batch = await bench.http_publish(pub_topics, batch=100)
        out["batch_publish"] = {
            "connections": 4,
            "messages_per_request": 100,
            "raw_insert_notify_per_s": round(raw),
            "http_batch_messages_per_s": round(http_batch),
            "ratio": round(http_batch / raw, 3),
            "http_cpu": bench.http_cpu,
            "target_ratio": ">= 1.0",
        }
        bench.http_cpu = http_cpu
        out["publish"] = {
            "connections": 4,
            "raw_insert_notify_per_s": round(raw),
            "sql_publish_per_s": round(sql),
            "sql_ratio": round(sql / raw, 3),
            "sql_publish_one_topic_per_s": round(sql_one),
            "sql_one_topic_ratio": round(sql_one / raw, 3),
            "http_publish_per_s": round(http),
            "http_ratio": round(http / raw, 3),
            "http_cpu": bench.http_cpu,
            "targets": {"sql_ratio": ">= 0.7", "http_ratio": ">= 0.4"},
        }
        out["latency"] = [await bench.latency(100), await bench.latency(1000)]
        out["latency_targets"] = {"p99_ms_100": "<= 10", "p99_ms_1000": "<= 60", "lost": 0}
        out["live_collection_latency"] = await bench.latency(100, collection="todos")
        out["live_collection_latency"]["target_p99_ms"] = "<= 15"

        picloud_rate = await bench.burst_picloud(fanout_subs, burst)
        picloud_seq_rate = await bench.burst_picloud(fanout_subs, burst, one_by_one=True)
    with bench.picloud(capacity=64) as server_pid:
        out["memory"] = await bench.memory(server_pid, connections)
        out["memory"]["target_kib_per_connection"] = "<= 20"
    with bench.bare_server() as bare_port:
        bare_rate = await bench.burst_bare(bare_port, fanout_subs, burst)
    out["burst_fanout"] = {
        "subscribers": fanout_subs,
        "messages": burst,
        "picloud_deliveries_per_s": round(picloud_rate),
        "picloud_one_commit_per_message_deliveries_per_s": round(picloud_seq_rate),
        "bare_aiohttp_deliveries_per_s": round(bare_rate),
        "ratio": round(picloud_rate / bare_rate, 3),
        "target_ratio": ">= 0.7",
    }
    return out


async def measure_publishing(bench: Bench, rounds: int) -> dict[str, Any]:
    """The publishing figures alone, ``rounds`` times in one server process (for their
    spread): batch publish over HTTP beside the raw loop, and doc PUT -> live collection
    beside SQL publish -> subscriber, each pair measured back to back."""
    pub_topics = [bench.topic(f"pub{i}") for i in range(4)]
    runs: list[dict[str, Any]] = []
    with bench.picloud(capacity=64):
        for _ in range(rounds):
            raw = bench.raw_insert_notify()
            batch = await bench.http_publish(pub_topics, batch=100)
            reference = await bench.latency(100)
            live = await bench.latency(100, collection=bench.fresh("todos"))
            runs.append(
                {
                    "batch_publish_ratio": round(batch / raw, 3),
                    "raw_insert_notify_per_s": round(raw),
                    "http_batch_messages_per_s": round(batch),
                    "live_collection_p50_ms": live["p50_ms"],
                    "live_collection_p99_ms": live["p99_ms"],
                    "put_round_trip_p50_ms": live["put_round_trip_p50_ms"],
                    "put_round_trip_p99_ms": live["put_round_trip_p99_ms"],
                    "live_lost": live["lost"],
                    "live_duplicated": live["duplicated"],
                    "sql_publish_p50_ms": reference["p50_ms"],
                    "sql_publish_p99_ms": reference["p99_ms"],
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                }
            )
    p99s = [r["live_collection_p99_ms"] for r in runs]
    ratios = [r["batch_publish_ratio"] for r in runs]
    return {
        "publishing_rounds": runs,
        "live_collection_p99_ms_range": [min(p99s), max(p99s)],
        "batch_publish_ratio_range": [min(ratios), max(ratios)],
        "targets": {"live_collection_p99_ms": "<= 15", "batch_publish_ratio": ">= 1.0"},
    }


async def measure_multiplex(bench: Bench, connections: int) -> dict[str, Any]:
    """Multiplexed streams and presence, each beside its single-topic figure of this run."""
    out: dict[str, Any] = {}
    with bench.picloud(capacity=64):
        single = await bench.latency(1000)
        ten = await bench.latency(1000, topics=10)
    out["multiplexed_latency"] = {
        "single_topic": single,
        "ten_topics_per_stream": ten,
        "targets": {"ten_topics_p99_ms": "<= 25", "lost": 0, "duplicated": 0},
    }
    with bench.picloud(capacity=64) as server_pid:
        one = await bench.memory(server_pid, connections)
    with bench.picloud(capacity=64) as server_pid:
        ten_mem = await bench.memory(server_pid, connections, topics=10)
    out["multiplexed_memory"] = {
        "single_topic": one,
        "ten_topics_per_stream": ten_mem,
        "target_kib_per_connection_ten_topics": "<= 24",
    }
    out["presence"] = await bench.presence_join(1000, 100 if bench.quick else 200)
    return out


@contextlib.contextmanager
def database(target: str, work: Path) -> Iterator[str]:
    """The database the run measures on: the embedded one inside ``work``, or a durable
    PostgreSQL 15 cluster on disk (never tmpfs, which would hide the commit's flush)."""
    if target == "durable":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from bench.targets import durable_cluster

        with durable_cluster(Path("/var/tmp")) as uri:
            yield uri
        return
    from picloud.embedded import embedded_postgres

    with embedded_postgres(work / "pg", cleanup_mode="delete") as uri:
        yield uri


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier)")
    parser.add_argument("--connections", type=int, default=5000, help="idle SSE connections")
    parser.add_argument(
        "--only",
        choices=["multiplex", "publishing"],
        help="only the multiplexed-stream and presence figures, or only the batch-publish"
        " and live-collection ones (with their references)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of --only publishing (for the spread)"
    )
    parser.add_argument(
        "--target",
        choices=["embedded", "durable"],
        default="embedded",
        help="the embedded PostgreSQL (data on tmpfs when /dev/shm is writable) or a durable"
        " PostgreSQL 15 cluster (fsync on, data on disk)",
    )
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--latency-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    nofile = raise_nofile()
    if args.bare_server:
        bare_server(args.bare_server)
        return 0
    if args.latency_worker:
        port, host, path, count = args.latency_worker
        asyncio.run(latency_worker(int(port), host, path, int(count)))
        return 0
    from picloud.migrate import migrate

    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="picloud-bench-", dir=base) as tmp:
        work = Path(tmp)
        with database(args.target, work) as uri:
            migrate(uri)
            bench = Bench(work, uri, args.quick)
            bench.setup()
            started = time.monotonic()
            if args.only == "multiplex":
                results = asyncio.run(measure_multiplex(bench, args.connections))
            elif args.only == "publishing":
                results = asyncio.run(measure_publishing(bench, args.rounds))
            else:
                results = asyncio.run(measure(bench, args.connections))
                results |= asyncio.run(measure_multiplex(bench, args.connections))
    report = {
        "database": args.target,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0],
            "nofile_limit": nofile,
        },
        "duration_s": round(time.monotonic() - started, 1),
        **results,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
