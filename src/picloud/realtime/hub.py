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

A multiplexed stream (several topics, one cursor) is one subscriber in the channel of each
of its topics; its frames carry the stream's cursor, built once per delivery for every
stream at the same position (realtime.mux), so they cost about what one topic's do.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from picloud.realtime.mux import Position, Step
from picloud.realtime.sse import HEARTBEAT, HEARTBEAT_WIRE, Frame

log = logging.getLogger(__name__)

ChannelKey = tuple[str, str]  # (app id text, topic name)

OVERFLOW = "overflow"
CLOSED = "closed"
STOPPING = "stopping"


class Subscriber:
    """One SSE connection. Its handler awaits ``done``; the hub writes to ``transport``.

    A stream of one topic is in the channel ``key`` and ``cursor`` is its last sequence
    number sent. A multiplexed stream (several topics) is in the channel of each of its
    topics and ``position`` (realtime.mux) says where it stands in all of them."""

    __slots__ = (
        "backlog",
        "backlog_bytes",
        "chunked",
        "cursor",
        "done",
        "ends",
        "key",
        "live",
        "operator",
        "position",
        "transport",
        "written",
    )

    def __init__(
        self,
        key: ChannelKey,
        transport: asyncio.Transport,
        *,
        chunked: bool,
        cursor: int = 0,
        operator: bool = False,
        position: Position | None = None,
    ) -> None:
        self.key = key  # (a multiplexed stream: the channel of its first topic)
        self.position = position
        # An operator's stream (the dashboard's live tail, authorised by an API key) may
        # follow an internal topic: closing a topic to outside subscribers keeps it.
        self.operator = operator
        self.transport = transport
        self.chunked = chunked
        self.cursor = cursor  # the last sequence number sent (or skipped on purpose)
        self.live = False
        # Frames fanned out while the stream replays, with their topic.
        self.backlog: list[tuple[str, Frame]] = []
        self.backlog_bytes = 0
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # Bytes handed to the transport since going live, and where each frame ends in
        # that count: frames whose end is past what the transport has flushed are pending
        # (made on the first frame: an idle stream holds none).
        self.written = 0
        self.ends: deque[int] | None = None

    @property
    def keys(self) -> tuple[ChannelKey, ...]:
        """The channels the stream is in."""
        return (self.key,) if self.position is None else self.position.shape.keys

    def seq(self, topic: str) -> int:
        """The last sequence number sent of ``topic``."""
        return self.cursor if self.position is None else self.position.seq(topic)

    def go_live(self) -> None:
        self.written = self.transport.get_write_buffer_size()
        if self.ends is not None:
            self.ends.clear()
        self.live = True

    def finish(self, reason: str) -> None:
        if not self.done.done():
            self.done.set_result(reason)

    def pending(self, buffered: int) -> int:
        """Frames written since going live that are still in the transport's buffer
        (``buffered``: its size now)."""
        ends = self.ends
        if ends is None:
            return 0
        if not buffered:
            ends.clear()
            return 0
        flushed = self.written - buffered
        while ends and ends[0] <= flushed:
            ends.popleft()
        return len(ends)

    def write_live(self, frames: list[Frame], joined: bytes | None) -> int:
        """Write ``frames`` of a one-topic stream (``joined``: their wire bytes together,
        when all apply); how many were written."""
        if frames[0].seq <= self.cursor:
            frames = [f for f in frames if f.seq > self.cursor]
            if not frames:
                return 0
            joined = None
        if joined is None or not self.chunked:
            joined = b"".join(f.wire if self.chunked else f.raw for f in frames)
        written = self.written
        ends = self.ends
        if ends is None:
            ends = self.ends = deque()
        for f in frames:
            written += len(f.wire) if self.chunked else len(f.raw)
            ends.append(written)
        self.written = written
        self.cursor = frames[-1].seq
        self.transport.write(joined)
        return len(frames)

    def write_step(self, step: Step, data: bytes, sizes: tuple[int, ...]) -> int:
        """Write a multiplexed stream's ``step`` (``data``: its bytes for this transport,
        ``sizes``: each frame's); how many frames were written."""
        self.position = step.position
        if not sizes:
            return 0
        written = self.written
        ends = self.ends
        if ends is None:
            ends = self.ends = deque()
        for size in sizes:
            written += size
            ends.append(written)
        self.written = written
        self.transport.write(data)
        return len(sizes)

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
        """Subscriptions (a multiplexed stream counts once per topic)."""
        return sum(len(c.subscribers) for c in self.channels.values())

    def subscribe(
        self, sub: Subscriber, head: int, epoch: int, key: ChannelKey | None = None
    ) -> tuple[Channel, bool]:
        """Add ``sub`` to channel ``key`` (default: its own; created at ``head`` of topic
        incarnation ``epoch`` when new: a settled position); True when created."""
        key = sub.key if key is None else key
        channel = self.channels.get(key)
        if channel is not None and channel.epoch != epoch:
            # The topic was deleted and created again while this channel lived: its streams
            # end, and their clients resume (and are told of the new incarnation).
            self.close_channel(key)
            channel = None
        created = channel is None
        if channel is None:
            channel = self.channels[key] = Channel(key, epoch, head, head)
        channel.subscribers.add(sub)
        return channel, created

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.finish(CLOSED)
        for key in sub.keys:
            channel = self.channels.get(key)
            if channel is None:
                continue
            channel.subscribers.discard(sub)
            if not channel.subscribers:
                del self.channels[key]

    def deliver(self, key: ChannelKey, frames: Iterable[Frame]) -> None:
        """Fan frames (ascending sequence numbers) out to the channel's subscribers."""
        channel = self.channels.get(key)
        if channel is None:
            return
        fresh = [f for f in frames if f.seq > channel.last_seq]
        if not fresh:
            return
        channel.last_seq = fresh[-1].seq
        topic = key[1]
        joined = b"".join(f.wire for f in fresh)
        size = len(joined)
        capacity = self.capacity
        max_bytes = self.max_bytes
        # Multiplexed streams: the step these frames make from each position, built once
        # and shared by every stream that stands there (realtime.mux).
        steps: dict[Position, Step] = {}
        for sub in list(channel.subscribers):
            if not sub.live:
                sub.backlog.extend((topic, f) for f in fresh)
                sub.backlog_bytes += size
                if len(sub.backlog) > capacity or sub.backlog_bytes > max_bytes:
                    self._drop(channel, sub)
                continue
            if sub.transport.is_closing():
                self._drop(channel, sub, CLOSED)
                continue
            position = sub.position
            step = None
            if position is not None:
                step = steps.get(position)
                if step is None:
                    step = steps[position] = position.advance(topic, fresh)
                data, sizes = step.data(sub.chunked)
                amount = len(data)
            else:
                amount = size
            # Judged before writing: a burst alone never cuts a reader that keeps up, only
            # more than `capacity` earlier frames still unsent when new ones arrive, or
            # unsent bytes that these would take past `max_bytes`.
            buffered = sub.transport.get_write_buffer_size()
            if sub.pending(buffered) > capacity or (buffered and buffered + amount > max_bytes):
                self._drop(channel, sub)
                continue
            try:
                if step is not None:
                    self.delivered += sub.write_step(step, data, sizes)
                else:
                    self.delivered += sub.write_live(fresh, joined)
            except (ConnectionError, RuntimeError):
                self._drop(channel, sub, CLOSED)

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
        beaten: set[Subscriber] = set()
        for channel in self.channels.values():
            for sub in channel.subscribers:
                if not sub.live or sub.transport.is_closing():
                    continue
                if sub.position is not None:
                    if sub in beaten:
                        continue  # one heartbeat per multiplexed connection
                    beaten.add(sub)
                data = HEARTBEAT_WIRE if sub.chunked else HEARTBEAT
                sub.written += len(data)
                sub.transport.write(data)

    def reap_idle(self) -> int:
        """Drop channels without subscribers (normally removed at once); how many."""
        idle = [k for k, c in self.channels.items() if not c.subscribers]
        for key in idle:
            del self.channels[key]
        return len(idle)
