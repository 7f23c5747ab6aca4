"""Slow consumers are bounded in bytes: a small socket send buffer (SO_SNDBUF) and a limit
on bytes queued in user space, beside the limit in messages."""

from __future__ import annotations

import array
import asyncio
import fcntl
import socket
import termios

import aiohttp
import psycopg

from picloud.realtime.cursor import parse_cursor
from picloud.realtime.hub import Subscriber
from tests.fix_server import Api, ServerFactory
from tests.polling import until
from tests.test_realtime_sse import Realtime

SNDBUF = 64 * 1024
MAX_PENDING = 256 * 1024
MESSAGE = "x" * 4000


def _kernel_unsent(sock: socket.socket) -> int:
    """Bytes in a socket's kernel send queue (SIOCOUTQ)."""
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
    return buf[0]


def _never_reading(port: int, host: str, topic: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /realtime/topics/{topic} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    sock.setblocking(False)
    return sock


async def test_a_socket_that_never_reads_is_cut_by_bytes(
    server_factory: ServerFactory, database: str
) -> None:
    # The message limit is out of reach: only the byte limits can cut this subscriber.
    server = await server_factory(
        realtime_broadcast_capacity=1_000_000,
        realtime_socket_sndbuf=SNDBUF,
        realtime_max_pending_bytes=MAX_PENDING,
    )
    async with aiohttp.ClientSession() as session:
        rt = await Realtime.create(Api(session, server.url), server)
        await rt.topic("t")
        fast = await rt.subscribe("t")
        slow = _never_reading(server.port, rt.host, "t")
        hub = rt.relay.hub
        await until(lambda: hub.subscriber_count() == 2)
        slow_port = slow.getsockname()[1]
        (channel,) = hub.channels.values()
        (slow_sub,) = [s for s in channel.subscribers if _peer_port(s) == slow_port]
        slow_sock = slow_sub.transport.get_extra_info("socket")
        assert slow_sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * SNDBUF

        published = 0  # bytes of frames the server took for the slow subscriber
        peak_user = peak_kernel = 0
        async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
            for n in range(1, 2001):  # at most 8 MB: far beyond what the limits allow
                await conn.execute(
                    "SELECT picloud.publish(%s, 't', to_jsonb(%s::text))", (rt.app["id"], MESSAGE)
                )
                # Once the fast reader has it, the hub has handed it to everyone.
                assert await fast.messages(1) == [(n, MESSAGE)]
                if hub.overflows:
                    break
                published += len(MESSAGE) + 100
                peak_user = max(peak_user, slow_sub.transport.get_write_buffer_size())
                peak_kernel = max(peak_kernel, _kernel_unsent(slow_sock))
        assert hub.overflows == 1, f"not cut after {published:,} bytes"
        # What a client that never reads costs the server: the kernel queue stays within
        # the (doubled) SO_SNDBUF, the user-space buffer within the limit.
        assert peak_kernel <= 2 * SNDBUF, peak_kernel
        assert peak_user <= MAX_PENDING, peak_user
        # Everything it was sent fits in its receive window, the kernel send queue and
        # the user-space limit (with a frame of slack), not megabytes.
        assert published <= MAX_PENDING + 2 * SNDBUF + 64 * 1024, published
        assert hub.subscriber_count() == 1

        # It reads now: what reached it, then the cut; a resume fills the gap exactly.
        loop = asyncio.get_running_loop()
        received = b""
        async with asyncio.timeout(10):
            while True:
                try:
                    data = await loop.sock_recv(slow, 1 << 20)
                except ConnectionResetError:
                    break
                if not data:
                    break
                received += data
        slow.close()
        text = received.decode(errors="replace")
        ids = [parse_cursor(line[4:]).seq for line in text.split("\n") if line.startswith("id: ")]
        last = ids[-1] if ids else 0
        assert last < n
        resumed = await rt.subscribe("t", headers={"Last-Event-ID": str(last)})
        rest = await resumed.messages(n - last, within=30)
        assert [seq for seq, _ in rest] == list(range(last + 1, n + 1))
        resumed.close()
        fast.close()


def _peer_port(sub: Subscriber) -> int:
    peer = sub.transport.get_extra_info("peername")
    return int(peer[1]) if peer else -1
