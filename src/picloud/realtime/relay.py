"""The ``relay`` role: LISTEN/NOTIFY to live SSE subscribers.

One dedicated autocommit connection per process LISTENs on
``picloud.realtime_channel()`` (payload ``<app_id> <seq> <topic>``: ids, never bodies),
``picloud.realtime_control_channel()`` (``close <app_id> <topic>``) and
``picloud.presence_channel()`` (picloud.realtime.presence). A notification only marks its
channel dirty; the pump then reads every dirty channel's new rows (``seq >`` what the
channel last fanned out) from ``picloud.messages`` in one query and hands the settled ones
to the hub, in position order. Positions are drawn without a lock held through commit
(sql/32_positions.sql), so a reader can see position n + 2 before n + 1 commits (or n + 1
was rolled back): the relay moves past a gap only once it is settled, that is when every
transaction that was publishing to the topic just after the read that showed the gap has
ended (picloud.topic_blockers, asked again every ``RESWEEP_SEC`` while some gap waits). No
message can then appear behind a position a subscriber has passed.

At most one committing publish carries a NOTIFY (sql/29_wakeups.sql, picloud.wake_on_commit);
the others commit without one, so a notification is a wake-up for every channel, not just
the one it names: the pump sweeps all live channels, and sweeps again every
``RESWEEP_SEC`` for as long as some publish is still committing
(picloud.writers_committing, asked before each read). A publish that committed without
its own NOTIFY is thus read within one re-sweep of its commit. ``BACKSTOP_SEC`` bounds the
rare cases no wake-up covers (a notifying transaction that failed at commit).

When the LISTEN connection drops (database restart, ``pg_terminate_backend``) the relay
reconnects, LISTENs again and re-reads every live channel from the table, so live
subscribers see no gap; channels whose topic vanished or closed meanwhile are ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import defaultdict
from typing import Any

import psycopg
from prometheus_client import Gauge
from psycopg.rows import dict_row
from psycopg_pool import PoolTimeout

from picloud.db import CONNECT_TIMEOUT_SEC, Row, application_name, connect_options
from picloud.node import Node, pause
from picloud.queries import q
from picloud.realtime.hub import Channel, ChannelKey, Hub
from picloud.realtime.presence import Presence
from picloud.realtime.sse import Frame

log = logging.getLogger(__name__)

FETCH_PAGE = 500
# Capped low: live streams resume within half a second of the database coming back.
RECONNECT_DELAY_SEC = (0.05, 0.1, 0.25, 0.5)
PRESENCE_INTERVAL_SEC = 10.0
EVERYTHING = sys.maxsize
RESWEEP_SEC = 0.001
BACKSTOP_SEC = 1.0


class Relay:
    """The hub plus the machinery that feeds it (``picloud.roles.Roles.relay``)."""

    def __init__(self, state: Node) -> None:
        self.state = state
        self.hub = Hub(
            state.settings.realtime_broadcast_capacity, state.settings.realtime_max_pending_bytes
        )
        # Frames handed to the hub per channel and round: bounded by the buffer capacity.
        self.page = max(1, min(FETCH_PAGE, state.settings.realtime_broadcast_capacity))
        # Who is here on presence topics (picloud.realtime.presence).
        self.presence = Presence(state, state.settings.realtime_max_pending_bytes)
        self.dirty: dict[ChannelKey, int] = {}  # channel -> highest notified seq
        self.verify: set[ChannelKey] = set()  # channels to check and catch up from the table
        # Channels stopped at a gap: the position that settles once the publishing
        # transactions named (still in flight when asked) have ended.
        self.gaps: dict[ChannelKey, tuple[Channel, int, frozenset[int]]] = {}
        self.seen: dict[ChannelKey, int] = {}  # what the last read of a stopped channel saw
        self.sweep = False  # read every live channel (a wake-up, not one channel's news)
        self.wake = asyncio.Event()
        self.listening = asyncio.Event()
        self.connections = 0  # LISTEN connections opened so far (1 + reconnects)
        # The pump reads on a connection of its own: busy API traffic on the pool never
        # delays delivery, and its two queries stay prepared.
        self._reader: psycopg.AsyncConnection[Row] | None = None
        self._register_metrics()

    async def _reader_conn(self) -> psycopg.AsyncConnection[Row]:
        if self._reader is None or self._reader.closed:
            self._reader = await psycopg.AsyncConnection.connect(
                self.state.conninfo,
                autocommit=True,
                row_factory=dict_row,
                options=connect_options(self.state.settings),
                application_name=application_name("relay-reader", self.state.node_id),
                connect_timeout=CONNECT_TIMEOUT_SEC,
            )
        return self._reader

    async def _read(self, query: str, params: dict[str, Any]) -> list[Row]:
        return (await self._reads((query, params)))[0]

    async def _reads(self, *queries: tuple[str, dict[str, Any]]) -> list[list[Row]]:
        """Run ``queries`` in order, each with a snapshot of its own (READ COMMITTED), and
        return their rows. Several are sent together (pipeline mode): one round trip."""
        conn = await self._reader_conn()
        try:
            if len(queries) == 1:
                query, params = queries[0]
                return [await (await conn.execute(q(query), params, prepare=True)).fetchall()]
            async with conn.pipeline():
                cursors = [
                    await conn.execute(q(query), params, prepare=True) for query, params in queries
                ]
            return [await c.fetchall() for c in cursors]
        except psycopg.OperationalError:
            await conn.close()
            self._reader = None
            raise

    def _register_metrics(self) -> None:
        registry = self.state.metrics.registry
        hub = self.hub
        gauges = {
            "picloud_realtime_subscribers": ("Live SSE subscribers", hub.subscriber_count),
            "picloud_realtime_channels": ("Channels with subscribers", lambda: len(hub.channels)),
            "picloud_realtime_frames_delivered": (
                "Frames written to live subscribers since start",
                lambda: hub.delivered,
            ),
            "picloud_realtime_overflows": (
                "Subscribers cut off for falling behind since start",
                lambda: hub.overflows,
            ),
            "picloud_realtime_listen_connections": (
                "LISTEN connections opened since start (1 + reconnects)",
                lambda: self.connections,
            ),
        }
        for name, (doc, read) in gauges.items():
            Gauge(name, doc, registry=registry).set_function(read)

    # -- called by the SSE handler -------------------------------------------------
    def channel_created(self, key: ChannelKey) -> None:
        """A new channel may have missed notifications before it existed: catch it up."""
        self.verify.add(key)
        self.wake.set()

    # -- the role ------------------------------------------------------------------
    async def run(self) -> None:
        stopping = self.state.stopping
        pump = asyncio.create_task(self._pump(), name="picloud-relay-pump")
        beat = asyncio.create_task(self._heartbeat(), name="picloud-relay-heartbeat")
        presence = asyncio.create_task(self._presence(), name="picloud-relay-presence")
        backstop = asyncio.create_task(self._backstop(), name="picloud-relay-backstop")
        who = asyncio.create_task(self.presence.run(), name="picloud-relay-who")
        failures = 0
        try:
            while not stopping.is_set():
                try:
                    await self._listen_once()
                    failures = 0
                except (psycopg.OperationalError, OSError) as exc:
                    self.listening.clear()
                    delay = RECONNECT_DELAY_SEC[min(failures, len(RECONNECT_DELAY_SEC) - 1)]
                    failures += 1
                    log.warning(
                        "relay LISTEN connection lost (%s); reconnecting in %.2fs", exc, delay
                    )
                    await pause(stopping, delay)
        finally:
            self.listening.clear()
            for task in (pump, beat, presence, backstop, who):
                task.cancel()
            await asyncio.gather(pump, beat, presence, backstop, who, return_exceptions=True)
            if self._reader is not None:
                await self._reader.close()
                self._reader = None

    async def _listen_once(self) -> None:
        settings = self.state.settings
        conn = await psycopg.AsyncConnection.connect(
            self.state.conninfo,
            autocommit=True,
            options=connect_options(settings),
            application_name=application_name("relay", self.state.node_id),
            connect_timeout=CONNECT_TIMEOUT_SEC,
        )
        async with conn:
            channels = await (await conn.execute(q("relay_listen"))).fetchone()
            assert channels is not None
            self.connections += 1
            # Anything published while nobody listened is read back from the table.
            self.verify.update(self.hub.channels)
            self.wake.set()
            self.presence.listening_again()
            self.listening.set()
            listen = asyncio.create_task(self._consume(conn, *channels))
            stop = asyncio.create_task(self.state.stopping.wait())
            try:
                await asyncio.wait({listen, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                if not listen.done():
                    listen.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listen  # re-raises the connection's error, if any

    async def _consume(
        self,
        conn: psycopg.AsyncConnection[Any],
        messages_channel: str,
        control_channel: str,
        presence_channel: str,
    ) -> None:
        channels = self.hub.channels
        async for note in conn.notifies():
            try:
                if note.channel == messages_channel:
                    app_id, seq, topic = note.payload.split(" ", 2)
                    int(seq)  # a malformed payload is logged and ignored
                    if channels:
                        self.sweep = True
                        self.wake.set()
                elif note.channel == presence_channel:
                    self.presence.notified(note.payload)
                elif note.channel == control_channel:
                    verb, app_id, topic = note.payload.split(" ", 2)
                    if verb == "close":
                        ended = self.hub.close_channel((app_id, topic))
                        if ended:
                            log.info("topic %s/%s closed: ended %d stream(s)", app_id, topic, ended)
            except ValueError:
                log.warning("ignored a malformed %s notification: %r", note.channel, note.payload)

    async def _pump(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            verify, self.verify = self.verify, set()
            dirty, self.dirty = self.dirty, {}
            sweep, self.sweep = self.sweep, False
            try:
                if verify:
                    await self._verify(verify)
                    for key in verify:
                        dirty[key] = EVERYTHING
                if sweep:
                    dirty.update(dict.fromkeys(self.hub.channels, EVERYTHING))
                # On a sweep, asked before the read (see the module docstring).
                committing, found = await self._fetch(dirty, ask_committing=sweep)
                if found or self.gaps:
                    await self._settle(found)
                if committing or self.gaps:
                    await asyncio.sleep(RESWEEP_SEC)
                    self.sweep = True
                    self.wake.set()
            except (psycopg.OperationalError, PoolTimeout) as exc:
                log.warning("relay could not read messages (%s); retrying", exc)
                self.verify |= verify
                self.sweep |= sweep
                for key, seq in dirty.items():
                    self.dirty[key] = max(seq, self.dirty.get(key, 0))
                await asyncio.sleep(0.2)
                self.wake.set()
            except Exception:
                log.exception("relay pump failed on %d channel(s)", len(dirty))
                await asyncio.sleep(0.2)

    async def _verify(self, keys: set[ChannelKey]) -> None:
        """End channels whose topic no longer exists; end the outside subscribers of topics
        that are no longer external (operators' streams of internal topics stay)."""
        live = [k for k in keys if k in self.hub.channels]
        if not live:
            return
        params = {"app_ids": [k[0] for k in live], "topics": [k[1] for k in live]}
        rows = await self._read("relay_open_topics", params)
        existing = {(r["app_id"], r["topic"]): r for r in rows}
        channels = self.hub.channels
        for key in live:
            row = existing.get(key)
            channel = channels.get(key)
            if channel is None:
                continue
            if row is None or row["epoch"] != channel.epoch:
                self.hub.close_channel(key)
            elif not row["external"]:
                self.hub.close_channel(key, operators_too=False)

    async def _fetch(
        self, dirty: dict[ChannelKey, int], *, ask_committing: bool = False
    ) -> tuple[bool, dict[ChannelKey, Channel]]:
        """Read the dirty channels and deliver what is settled; returns whether some publish
        was still committing just before the read (when ``ask_committing``; the question
        and the read go in one round trip, the question first) and the channels that
        stopped at a gap (each with the position its read saw in ``self.seen``)."""
        channels = self.hub.channels
        keys = [k for k, seq in dirty.items() if k in channels and seq > channels[k].last_seq]
        asked: list[tuple[str, dict[str, Any]]] = (
            [("relay_committing", {})] if ask_committing else []
        )
        if not keys:
            if not asked:
                return False, {}
            return bool((await self._reads(*asked))[0][0]["busy"]), {}
        epochs = {k: channels[k].epoch for k in keys}
        params = {
            "app_ids": [k[0] for k in keys],
            "topics": [k[1] for k in keys],
            "epochs": list(epochs.values()),
            "afters": [channels[k].last_seq for k in keys],
            "limit": self.page,
        }
        *answers, rows = await self._reads(*asked, ("relay_fetch", params))
        committing = bool(answers[0][0]["busy"]) if answers else False
        frames: dict[ChannelKey, list[Frame]] = defaultdict(list)
        for row in rows:
            key = (row["app_id"], row["topic"])
            frames[key].append(Frame.message(epochs[key], row["seq"], row["data"]))
        stopped: dict[ChannelKey, Channel] = {}
        for key, batch in frames.items():
            channel = channels.get(key)
            if channel is None or channel.epoch != epochs[key]:
                continue  # replaced by a new incarnation of the topic during the read
            ready = settled_prefix(channel, batch)
            if ready:
                self.hub.deliver(key, ready)
            if len(ready) < len(batch):
                stopped[key] = channel
                self.seen[key] = batch[-1].seq
            elif len(batch) == self.page:  # more to read
                self.dirty[key] = max(dirty[key], self.dirty.get(key, 0))
                self.wake.set()
        return committing, stopped

    async def _settle(self, stopped: dict[ChannelKey, Channel]) -> None:
        """Ask which publishers may still fill the gaps channels stopped at (new ones: every
        publisher of the topic in flight now; waiting ones: those named before); a gap
        whose publishers have all ended is settled up to what its read saw, and the
        channel is read again."""
        channels = self.hub.channels
        waiting = {k: g for k, g in self.gaps.items() if channels.get(k) is g[0]}
        fresh = {k: c for k, c in stopped.items() if k not in waiting}
        pairs: list[tuple[ChannelKey, int | None]] = [(k, None) for k in fresh]
        pairs += [(k, x) for k, (_, _, xids) in waiting.items() for x in xids]
        if not pairs:
            self.gaps = {}
            return
        params = {
            "app_ids": [k[0] for k, _ in pairs],
            "topics": [k[1] for k, _ in pairs],
            "xids": [x for _, x in pairs],
        }
        held: dict[ChannelKey, set[int]] = defaultdict(set)
        for row in await self._read("relay_blockers", params):
            held[(row["app_id"], row["topic"])].add(row["xid"])
        gaps: dict[ChannelKey, tuple[Channel, int, frozenset[int]]] = {}
        settled: list[tuple[Channel, int]] = []
        for key, channel in fresh.items():
            upto = self.seen.pop(key)
            if held[key]:
                gaps[key] = (channel, upto, frozenset(held[key]))
            else:
                settled.append((channel, upto))
        for key, (channel, upto, xids) in waiting.items():
            self.seen.pop(key, None)
            remaining = xids & held[key]
            if remaining:
                gaps[key] = (channel, upto, frozenset(remaining))
            else:
                settled.append((channel, upto))
        self.gaps = gaps
        for channel, upto in settled:
            channel.settled = max(channel.settled, upto)
            self.dirty[channel.key] = EVERYTHING
            self.wake.set()

    async def _backstop(self) -> None:
        while True:
            await asyncio.sleep(BACKSTOP_SEC)
            if self.hub.channels:
                self.sweep = True
                self.wake.set()

    async def _heartbeat(self) -> None:
        interval = self.state.settings.realtime_heartbeat_sec
        while True:
            await asyncio.sleep(interval)
            self.hub.heartbeat()
            self.hub.reap_idle()

    async def report_presence(self, *, leaving: bool = False) -> None:
        """Report this node's subscribers per topic (read in picloud.topic_subscribers)."""
        channels = [] if leaving else list(self.hub.channels.values())
        params = {
            "node_id": self.state.node_id,
            "app_ids": [c.key[0] for c in channels],
            "topics": [c.key[1] for c in channels],
            "counts": [len(c.subscribers) for c in channels],
        }
        async with self.state.db.connection() as conn:
            await conn.execute(q("report_presence"), params)

    async def _presence(self) -> None:
        try:
            while True:
                try:
                    await self.report_presence()
                except (psycopg.Error, PoolTimeout) as exc:
                    log.warning("could not report subscriber counts (%s)", exc)
                await asyncio.sleep(PRESENCE_INTERVAL_SEC)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.report_presence(leaving=True)), 2)


def settled_prefix(channel: Channel, frames: list[Frame]) -> list[Frame]:
    """The frames (ascending positions after ``channel.last_seq``) the channel may deliver
    now: each must follow the one before without a gap, or be settled."""
    last = channel.last_seq
    n = 0
    for f in frames:
        if f.seq != last + 1 and f.seq > channel.settled:
            break
        last = f.seq
        n += 1
    return frames[:n]
