"""In-process fan-out cost of a multiplexed stream against a single-topic stream.

The hub alone (no sockets, no database, no HTTP): ``--subscribers`` streams of one topic
and as many streams of ``--topics`` topics (all opened at the same place, as live streams
of the same topics are), and ``--frames`` messages delivered to each kind, one at a time,
spread over the topics in turn. Prints JSON: the hub's CPU time per subscriber per frame
(the median of ``--rounds`` rounds, the kinds alternating), the bytes each subscriber is
written per frame, and the hub's own memory per idle stream (tracemalloc: the subscriber,
its channel memberships and its position; not the connection's). The transport stand-in
only counts bytes.

    .venv/bin/python bench/mux_fanout.py [--subscribers 1000] [--topics 10] [--frames 500]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
import tracemalloc
from typing import Any, cast

import orjson

from picloud.realtime.hub import Hub, Subscriber
from picloud.realtime.mux import start_position
from picloud.realtime.sse import Frame

APP = "8c1d4a40-77a4-4d5e-9a53-6f3a2f1f0c11"
EPOCH = 1_764_700_000_000_000  # topic incarnations: creation times in microseconds


class CountingTransport:
    """What the hub uses of an asyncio transport; keeps only a count of the bytes."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


def frame(topic: str, epoch: int, seq: int, n: int) -> Frame:
    """A message frame as the relay builds it (the payload of bench/realtime.py)."""
    message = {"t": 1764700000.123456, "n": n, "k": seq}
    data = orjson.dumps(
        {"topic": topic, "message": message, "published_at": "2026-12-02T17:00:00.123456+00:00"}
    ).decode()
    return Frame.message(epoch, seq, data)


class Setup:
    def __init__(self, hub: Hub, subscribers: int, topics: int, head: int) -> None:
        """``subscribers`` live streams of ``topics`` topics (1: the single-topic route's
        kind) on ``hub``, every topic at ``head``."""
        self.names = [f"mux-{topics}-{i}" for i in range(topics)]
        self.epochs = {t: EPOCH + 1_500 * i for i, t in enumerate(self.names)}
        self.transports = [CountingTransport() for _ in range(subscribers)]
        self.subs: list[Subscriber] = []
        for transport in self.transports:
            if topics == 1:
                sub = Subscriber(
                    (APP, self.names[0]), cast(Any, transport), chunked=True, cursor=head
                )
            else:
                position = start_position(APP, {t: (e, head) for t, e in self.epochs.items()})
                sub = Subscriber(
                    (APP, self.names[0]), cast(Any, transport), chunked=True, position=position
                )
            for t in self.names:
                hub.subscribe(sub, head, self.epochs[t], (APP, t))
            sub.go_live()
            self.subs.append(sub)
        self.next_seq = dict.fromkeys(self.names, head + 1)
        self.sent = 0

    def frames(self, count: int) -> list[tuple[tuple[str, str], Frame]]:
        """The next ``count`` messages, round the topics in turn (built before timing: the
        relay builds each once, whoever subscribes)."""
        out = []
        for _ in range(count):
            topic = self.names[self.sent % len(self.names)]
            seq = self.next_seq[topic]
            self.next_seq[topic] = seq + 1
            out.append(((APP, topic), frame(topic, self.epochs[topic], seq, self.sent)))
            self.sent += 1
        return out

    def written(self) -> int:
        return sum(t.bytes for t in self.transports)


def timed(hub: Hub, batch: list[tuple[tuple[str, str], Frame]]) -> float:
    gc.collect()
    started = time.process_time()
    for key, f in batch:
        hub.deliver(key, [f])
    return time.process_time() - started


def idle_bytes(subscribers: int, topics: int) -> float:
    """The hub's own allocations per idle stream (tracemalloc)."""
    hub = Hub(capacity=64)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    setup = Setup(hub, subscribers, topics, head=41)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    # The stand-in transports are not the hub's: left out.
    own = grown - sum(t.__sizeof__() for t in setup.transports)
    return own / subscribers


async def run(args: argparse.Namespace) -> dict[str, Any]:
    hub = Hub(capacity=1 << 30, max_bytes=1 << 40)
    single = Setup(hub, args.subscribers, 1, head=41)
    multi = Setup(hub, args.subscribers, args.topics, head=41)
    # Warm up both paths.
    timed(hub, single.frames(20))
    timed(hub, multi.frames(20))
    cost: dict[str, list[float]] = {"single": [], "multi": []}
    written = {"single": 0, "multi": 0}
    for _ in range(args.rounds):
        for name, setup in (("single", single), ("multi", multi)):
            batch = setup.frames(args.frames)
            before = setup.written()
            seconds = timed(hub, batch)
            written[name] += setup.written() - before
            cost[name].append(seconds / (args.subscribers * args.frames) * 1e6)
    deliveries = args.subscribers * args.frames * args.rounds
    per_frame = {k: round(v / deliveries, 1) for k, v in written.items()}
    us = {k: round(statistics.median(v), 3) for k, v in cost.items()}
    sample = multi.subs[0].position
    assert sample is not None
    return {
        "subscribers": args.subscribers,
        "frames_per_round": args.frames,
        "rounds": args.rounds,
        "single_topic": {
            "hub_cpu_us_per_subscriber_frame": us["single"],
            "bytes_per_frame": per_frame["single"],
        },
        f"{args.topics}_topics_per_stream": {
            "hub_cpu_us_per_subscriber_frame": us["multi"],
            "bytes_per_frame": per_frame["multi"],
            "cursor_chars": len(sample.cursor),
            "positions_shared": len({id(s.position) for s in multi.subs}) == 1,
        },
        "ratio_multi_to_single_cpu": round(us["multi"] / us["single"], 2),
        "hub_bytes_per_idle_stream": {
            "single_topic": round(idle_bytes(args.subscribers, 1)),
            f"{args.topics}_topics": round(idle_bytes(args.subscribers, args.topics)),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.topics < 2 or args.subscribers < 1 or args.frames < 1 or args.rounds < 1:
        parser.error("--topics must be at least 2; the other counts at least 1")
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
