"""Live subscribers grouped in per-(app, topic) channels, and the fan-out to them.

Each frame is encoded once and written straight to every live subscriber's transport (no
task wake-up per subscriber). A subscriber's buffer is bounded twice: when more than
``capacity`` frames of it are still waiting in its transport's buffer as new frames
arrive, or when writing new frames would take that buffer past ``max_bytes`` (unless it
is empty: one delivery always goes to a reader that has caught up), it is disconnected
(the transport is aborted, so nothing of it stays blocked) and the client resumes with
``Last-Event-ID``, replayed from the message log without gaps. A slow reader therefore
never delays the others, and costs at most ``max_bytes`` of user-space buffer (or one
delivery, when that alone is larger) on top of its socket's send buffer (the stream
handler makes that small, SO_SNDBUF).

A subscriber that is still replaying history from the log is not live yet: frames for it
are kept in a backlog (bounded the same way) that its handler writes after the replay,
skipping what the replay already sent, so nothing is lost or duplicated.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from picloud.realtime.mux import Mux
from picloud.realtime.sse import HEARTBEAT, HEARTBEAT_WIRE, Frame

log = logging.getLogger(__name__)

ChannelKey = tuple[str, str]  # (app id text, topic name)

OVERFLOW = "overflow"
CLOSED = "closed"
STOPPING = "stopping"


class Subscriber:
    """One SSE connection. Its handler awaits ``done``; the hub writes to ``transport``."""

    __slots__ = (
        "backlog",
        "backlog_bytes",
        "chunked",
        "cursor",
        "done",
        "ends",
        "key",
        "live",
        "mux",
        "operator",
        "transport",
        "written",
    )

    def __init__(
        self,
        key: ChannelKey,
        transport: asyncio.Transport,
        *,
        chunked: bool,
        cursor: int,
        operator: bool = False,
        mux: Mux | None = None,
    ) -> None:
        self.key = key
        # One topic of a multiplexed stream: the Mux writes its frames (with the stream's
        # cursor) and keeps the connection's write accounting.
        self.mux = mux
        # An operator's stream (the dashboard's live tail, authorised by an API key) may
        # follow an internal topic: closing a topic to outside subscribers keeps it.
        self.operator = operator
        self.transport = transport
        self.chunked = chunked
        self.cursor = cursor  # the last sequence number sent (or skipped on purpose)
        self.live = False
        self.backlog: list[Frame] = []
        self.backlog_bytes = 0
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # Bytes handed to the transport since going live, and where each frame ends in
        # that count: frames whose end is past what the transport has flushed are pending.
        self.written = 0
        # (A topic of a multiplexed stream counts in its Mux's: no deque of its own.)
        self.ends: deque[int] = deque() if mux is None else mux.ends

    def go_live(self) -> None:
        acct = self.mux or self
        acct.written = self.transport.get_write_buffer_size()
        acct.ends.clear()
        self.live = True

    def finish(self, reason: str) -> None:
        if not self.done.done():
            self.done.set_result(reason)

    def pending(self, buffered: int) -> int:
        """Frames written since going live that are still in the transport's buffer
        (``buffered``: its size now; on a multiplexed stream, of all its topics)."""
        acct = self.mux or self
        ends = acct.ends
        if not buffered:
            ends.clear()
            return 0
        flushed = acct.written - buffered
        while ends and ends[0] <= flushed:
            ends.popleft()
        return len(ends)

    def write_live(self, frames: list[Frame], joined: bytes | None) -> None:
        """Write ``frames`` (``joined``: their wire bytes together, when all apply)."""
        if frames[0].seq <= self.cursor:
            frames = [f for f in frames if f.seq > self.cursor]
            if not frames:
                return
            joined = None
        if self.mux is not None:
            self.cursor = frames[-1].seq
            self.transport.write(self.mux.write(self.key[1], frames))
            return
        if joined is None or not self.chunked:
            joined = b"".join(f.wire if self.chunked else f.raw for f in frames)
        written = self.written
        for f in frames:
            written += len(f.wire) if self.chunked else len(f.raw)
            self.ends.append(written)
        self.written = written
        self.cursor = frames[-1].seq
        self.transport.write(joined)

    def overflow(self) -> None:
        self.finish(OVERFLOW)
        self.transport.abort()


@dataclass
class Channel:
    key: ChannelKey
    epoch: int  # the topic incarnation whose messages this channel carries
    last_seq: int  # the highest position fanned out on this channel
    # Positions up to here are settled: no later commit can bring one of them (the relay
    # moves past a gap in the positions only below this).
    settled: int = 0
    subscribers: set[Subscriber] = field(default_factory=set)


class Hub:
    """All channels of this process."""

    def __init__(self, capacity: int, max_bytes: int = 1 << 20) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.channels: dict[ChannelKey, Channel] = {}
        self.delivered = 0  # frames written to live subscribers (for metrics)
        self.overflows = 0

    def subscriber_count(self) -> int:
        return sum(len(c.subscribers) for c in self.channels.values())

    def subscribe(self, sub: Subscriber, head: int, epoch: int) -> tuple[Channel, bool]:
        """Add ``sub`` to its channel (created at ``head`` of topic incarnation ``epoch``
        when new: a settled position); True when created."""
        channel = self.channels.get(sub.key)
        if channel is not None and channel.epoch != epoch:
            # The topic was deleted and created again while this channel lived: its streams
            # end, and their clients resume (and are told of the new incarnation).
            self.close_channel(sub.key)
            channel = None
        created = channel is None
        if channel is None:
            channel = self.channels[sub.key] = Channel(sub.key, epoch, head, head)
        channel.subscribers.add(sub)
        return channel, created

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.finish(CLOSED)
        channel = self.channels.get(sub.key)
        if channel is None:
            return
        channel.subscribers.discard(sub)
        if not channel.subscribers:
            del self.channels[sub.key]

    def deliver(self, key: ChannelKey, frames: Iterable[Frame]) -> None:
        """Fan frames (ascending sequence numbers) out to the channel's subscribers."""
        channel = self.channels.get(key)
        if channel is None:
            return
        fresh = [f for f in frames if f.seq > channel.last_seq]
        if not fresh:
            return
        channel.last_seq = fresh[-1].seq
        joined = b"".join(f.wire for f in fresh)
        size = len(joined)
        capacity = self.capacity
        max_bytes = self.max_bytes
        for sub in list(channel.subscribers):
            if not sub.live:
                sub.backlog.extend(fresh)
                sub.backlog_bytes += size
                if len(sub.backlog) > capacity or sub.backlog_bytes > max_bytes:
                    self._drop(channel, sub)
                continue
            if sub.transport.is_closing():
                self._drop(channel, sub, CLOSED)
                continue
            # Judged before writing: a burst alone never cuts a reader that keeps up, only
            # more than `capacity` earlier frames still unsent when new ones arrive, or
            # unsent bytes that these would take past `max_bytes`.
            buffered = sub.transport.get_write_buffer_size()
            if sub.pending(buffered) > capacity or (buffered and buffered + size > max_bytes):
                self._drop(channel, sub)
                continue
            try:
                sub.write_live(fresh, joined)
            except (ConnectionError, RuntimeError):
                self._drop(channel, sub, CLOSED)
                continue
            self.delivered += len(fresh)

    def _drop(self, channel: Channel, sub: Subscriber, reason: str = OVERFLOW) -> None:
        channel.subscribers.discard(sub)
        if reason == OVERFLOW:
            self.overflows += 1
            log.info(
                "subscriber of %s fell behind (over %d frames or %d bytes unsent): disconnected",
                sub.key,
                self.capacity,
                self.max_bytes,
            )
            sub.overflow()
        else:
            sub.finish(reason)

    def close_channel(
        self, key: ChannelKey, reason: str = CLOSED, *, operators_too: bool = True
    ) -> int:
        """End the streams of a channel (topic deleted or closed); how many ended.

        ``operators_too=False`` ends only outside subscribers, keeping operators' streams.
        """
        channel = self.channels.get(key)
        if channel is None:
            return 0
        ending = [s for s in channel.subscribers if operators_too or not s.operator]
        for sub in ending:
            channel.subscribers.discard(sub)
            sub.finish(reason)
        if not channel.subscribers:
            del self.channels[key]
        return len(ending)

    def close_all(self, reason: str = STOPPING) -> None:
        for key in list(self.channels):
            self.close_channel(key, reason)

    def heartbeat(self) -> None:
        """One ``:heartbeat`` comment to every live connection (encoded once)."""
        muxes: set[Mux] = set()
        for channel in self.channels.values():
            for sub in channel.subscribers:
                if not sub.live or sub.transport.is_closing():
                    continue
                if sub.mux is not None:
                    if sub.mux in muxes:
                        continue  # one heartbeat per multiplexed connection
                    muxes.add(sub.mux)
                data = HEARTBEAT_WIRE if sub.chunked else HEARTBEAT
                (sub.mux or sub).written += len(data)
                sub.transport.write(data)

    def reap_idle(self) -> int:
        """Drop channels without subscribers (normally removed at once); how many."""
        idle = [k for k, c in self.channels.items() if not c.subscribers]
        for key in idle:
            del self.channels[key]
        return len(idle)
