"""The hub's limits on one subscriber, in bytes and in messages (a transport stand-in that
records writes; the socket-level behaviour is in test_realtime_slow_bytes.py)."""

from __future__ import annotations

from typing import Any, cast

from picloud.realtime.cursor import parse_stream_cursor
from picloud.realtime.hub import CLOSED, OVERFLOW, Hub, Subscriber
from picloud.realtime.mux import start_position
from picloud.realtime.sse import Frame

KEY = ("app", "t")


class Transport:
    """What the hub uses of an asyncio transport; ``buffered`` is what is still unsent."""

    def __init__(self) -> None:
        self.buffered = 0
        self.written = b""
        self.writes: list[bytes] = []
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.written += data
        self.buffered += len(data)

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def frames(first: int, count: int, size: int) -> list[Frame]:
    return [Frame.message(7, n, '"' + "x" * size + '"') for n in range(first, first + count)]


def live(hub: Hub) -> tuple[Subscriber, Transport]:
    transport = Transport()
    sub = Subscriber(KEY, cast(Any, transport), chunked=True, cursor=0)
    hub.subscribe(sub, 0, 7)
    sub.go_live()
    return sub, transport


async def test_unsent_bytes_past_the_limit_cut_a_live_subscriber() -> None:
    hub = Hub(capacity=1000, max_bytes=10_000)
    slow, slow_t = live(hub)
    fast, fast_t = live(hub)
    # One delivery larger than the limit still goes to readers that have caught up.
    hub.deliver(KEY, frames(1, 3, 5000))
    assert slow_t.buffered > 10_000 and not slow.done.done()
    fast_t.buffered = 0  # the fast one's socket took it all
    hub.deliver(KEY, frames(4, 1, 100))
    assert slow.done.result() == OVERFLOW and slow_t.aborted
    assert not fast.done.done() and b"id: v1.7.4\n" in fast_t.written
    assert hub.overflows == 1

    # Below the limit nothing happens: a little unsent is normal.
    fast_t.buffered = 9_000
    hub.deliver(KEY, frames(5, 1, 100))
    assert not fast.done.done()
    hub.deliver(KEY, frames(6, 1, 2000))  # 9,000 + this > 10,000
    assert fast.done.result() == OVERFLOW


async def test_a_replaying_subscriber_is_cut_when_its_backlog_passes_the_limit() -> None:
    hub = Hub(capacity=1000, max_bytes=10_000)
    transport = Transport()
    sub = Subscriber(KEY, cast(Any, transport), chunked=True, cursor=0)
    hub.subscribe(sub, 0, 7)  # not live yet: frames are kept for after the replay
    hub.deliver(KEY, frames(1, 1, 5000))
    assert len(sub.backlog) == 1 and not sub.done.done()
    hub.deliver(KEY, frames(2, 1, 6000))
    assert sub.done.result() == OVERFLOW and transport.aborted


async def test_the_message_limit_still_applies() -> None:
    hub = Hub(capacity=2, max_bytes=1 << 30)
    sub, _ = live(hub)
    for n in range(1, 4):
        hub.deliver(KEY, frames(n, 1, 10))
    assert not sub.done.done()
    hub.deliver(KEY, frames(4, 1, 10))
    assert sub.done.result() == OVERFLOW


async def test_a_channel_of_another_epoch_is_ended_by_a_new_subscriber() -> None:
    hub = Hub(capacity=10)
    old, _ = live(hub)
    transport = Transport()
    new = Subscriber(KEY, cast(Any, transport), chunked=True, cursor=0)
    channel, created = hub.subscribe(new, 0, 8)
    assert created and channel.epoch == 8
    assert old.done.result() == CLOSED and hub.channels[KEY] is channel


async def test_a_multiplexed_connection_is_one_subscriber_with_one_cursor_and_heartbeat() -> None:
    hub = Hub(capacity=2, max_bytes=1 << 20)
    transport = Transport()
    position = start_position("app", {"t": (7, 0), "u": (9, 5)})
    sub = Subscriber(KEY, cast(Any, transport), chunked=False, position=position)
    for key, head, epoch in ((KEY, 0, 7), (("app", "u"), 5, 9)):
        hub.subscribe(sub, head, epoch, key)
    sub.go_live()
    assert hub.channels[KEY].subscribers == hub.channels[("app", "u")].subscribers == {sub}
    hub.deliver(KEY, frames(1, 1, 3))
    hub.deliver(("app", "u"), [Frame.message(9, 6, '"y"')])
    ids = [line[4:] for line in transport.written.decode().splitlines() if line.startswith("id: ")]
    assert all(i.startswith("v2m.") for i in ids)
    assert [{t: c.seq for t, c in parse_stream_cursor(i, ["u", "t"]).items()} for i in ids] == [
        {"t": 1, "u": 5},
        {"t": 1, "u": 6},
    ]
    before = len(transport.written)
    hub.heartbeat()
    assert transport.written[before:] == b":heartbeat\n\n", "one heartbeat per connection"
    # The unsent-frames limit counts the connection: frames of both topics are pending.
    hub.deliver(KEY, frames(2, 1, 3))
    assert not sub.done.done()
    hub.deliver(("app", "u"), [Frame.message(9, 7, '"z"')])
    assert sub.done.result() == OVERFLOW and transport.aborted
    hub.unsubscribe(sub)
    assert not hub.channels, "out of every channel at once"


async def test_streams_at_one_position_share_it_and_each_frame_is_built_once() -> None:
    hub = Hub(capacity=100, max_bytes=1 << 20)
    subs = []
    for _ in range(3):
        # Opened apart, same topics (in another order) at the same place: one position.
        order = {"u": (9, 5), "t": (7, 0)} if subs else {"t": (7, 0), "u": (9, 5)}
        sub = Subscriber(
            KEY, cast(Any, Transport()), chunked=True, position=start_position("app", order)
        )
        for key, head, epoch in ((KEY, 0, 7), (("app", "u"), 5, 9)):
            hub.subscribe(sub, head, epoch, key)
        sub.go_live()
        subs.append(sub)
    assert subs[0].position is subs[1].position is subs[2].position
    hub.deliver(KEY, frames(1, 2, 3))
    after = subs[0].position
    assert after is not None and after.seqs == (2, 5)
    assert all(s.position is after for s in subs), "the new position is shared too"
    written = [cast(Transport, s.transport).writes for s in subs]
    assert written[0][0].count(b"id: v2m.") == 2
    # The very same bytes object went to every transport: built once for all three.
    assert written[0][0] is written[1][0] is written[2][0]
    # A stream opened later at the same place holds the same position, and shares the next
    # frame's bytes with the others.
    later = Subscriber(
        KEY,
        cast(Any, Transport()),
        chunked=True,
        position=start_position("app", {"t": (7, 2), "u": (9, 5)}),
    )
    assert later.position is after
    hub.subscribe(later, 0, 7, KEY)
    hub.subscribe(later, 5, 9, ("app", "u"))
    later.go_live()
    hub.deliver(("app", "u"), [Frame.message(9, 6, '"y"')])
    assert cast(Transport, later.transport).writes[0] is written[0][1]
    assert later.position is subs[0].position
    assert later.position is not None and later.position.seqs == (2, 6)
