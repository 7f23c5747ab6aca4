"""Presence on the relay: who is connected to a presence topic, across nodes.

The rules live in SQL (sql/34_presence.sql); this is the node's side of them.

* **Tracking.** A stream of a presence topic whose token names a subject is *tracked*:
  it gets a number on this node, and the flusher writes joins and leaves to the database
  in batches (``picloud.presence_sync``, one round trip that also renews the node's lease).
  A stream that closes before its join was written never reaches the database.
* **Lease.** The node beats every ``timeout / 4`` with a lease of ``3/4 timeout`` and runs
  ``picloud.presence_expire``; so a node that dies silently stops counting (the view)
  within 3/4 of ``PICLOUD_PRESENCE_TIMEOUT_SEC`` and its subjects' leaves are announced
  within the timeout by any surviving node. A node that finds itself forgotten (it
  stalled past its lease, or the database restarted) joins all its streams again.
* **Watching.** Every stream of a presence topic (with a subject or not) receives
  ``event: presence`` frames. Per (app, topic) the node keeps who is present, loaded from
  the view when the first local stream arrives and then moved by the ``picloud.presence_channel()``
  notifications (which the database sends once per subject: first join, last leave). A new
  stream is first sent everyone present, so two subjects see each other whichever came
  first; an announcement that would not change the set (a join already seen in the
  snapshot) is dropped, so each stream sees one join and one leave per presence. After the
  LISTEN connection comes back, every channel is read again and only the difference is
  sent (announcements made while nobody listened are not lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from picloud import jsonnum
from picloud.node import Node
from picloud.queries import q
from picloud.realtime.hub import ChannelKey, Subscriber
from picloud.realtime.sse import chunk

log = logging.getLogger(__name__)

RETRY_SEC = (0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Tracked:
    """A connection with a subject on a presence topic of this node."""

    app_id: str
    topic: str
    subject: str
    info: str | None  # JSON text of the token's info object


@dataclass(slots=True)
class Watched:
    """One presence topic with streams on this node: who is present, and its streams
    (True once a stream was sent the full list)."""

    present: dict[str, Any] = field(default_factory=dict)  # subject -> info
    loaded: bool = False
    pending: list[tuple[str, str, Any]] = field(default_factory=list)  # while loading
    subs: dict[Subscriber, bool] = field(default_factory=dict)


def presence_frame(topic: str, event: str, subject: str, info: Any) -> bytes:
    data = jsonnum.dumps({"topic": topic, "event": event, "subject": subject, "info": info})
    return b"event: presence\ndata: %b\n\n" % data.encode()


class Presence:
    def __init__(self, state: Node, max_bytes: int) -> None:
        self.state = state
        self.max_bytes = max_bytes
        timeout = state.settings.presence_timeout_sec
        self.lease_sec = timeout * 0.75
        self.beat_sec = timeout / 4
        self.numbers = itertools.count(1)
        self.tracked: dict[int, Tracked] = {}
        # (stream, presence topic) -> its connection number (a stream of several topics
        # is one connection on each).
        self.conn_of: dict[tuple[Subscriber, ChannelKey], int] = {}
        self.joins: dict[int, Tracked] = {}  # not yet written
        self.leaves: set[int] = set()  # written joins whose streams closed
        self.written: set[int] = set()  # connections the database holds (or may)
        self.flush = asyncio.Event()
        self.watched: dict[ChannelKey, Watched] = {}
        self.to_load: set[ChannelKey] = set()
        self.load = asyncio.Event()
        self.active = False  # beats once it tracked or watched anything

    # -- the stream handler's side ----------------------------------------------------
    def attach(self, sub: Subscriber, key: ChannelKey, identity: dict[str, Any] | None) -> None:
        """A stream of the presence topic ``key`` (one of its topics) starts: it watches, and
        is tracked when its token names a subject (``identity``: {"subject", "info"})."""
        self.active = True
        watched = self.watched.get(key)
        if watched is None:
            watched = self.watched[key] = Watched()
            self._reload({key})
        if watched.loaded:
            self._send_all(sub, key[1], watched)
        watched.subs[sub] = watched.loaded
        if identity is not None:
            number = next(self.numbers)
            info = identity.get("info")
            self.tracked[number] = self.joins[number] = Tracked(
                key[0],
                key[1],
                identity["subject"],
                None if info is None else jsonnum.dumps(info),
            )
            self.conn_of[(sub, key)] = number
            self.flush.set()

    def detach(self, sub: Subscriber) -> None:
        """A stream ends (whether it was attached or not): on each of its topics."""
        for key in sub.keys:
            number = self.conn_of.pop((sub, key), None)
            if number is not None:
                del self.tracked[number]
                if self.joins.pop(number, None) is None or number in self.written:
                    self.leaves.add(number)
                    self.flush.set()
            watched = self.watched.get(key)
            if watched is not None:
                watched.subs.pop(sub, None)
                if not watched.subs:
                    del self.watched[key]
                    self.to_load.discard(key)

    # -- the relay's side -------------------------------------------------------------
    def notified(self, payload: str) -> None:
        """A presence-channel notification (JSON: app, topic, event, subject, info)."""
        try:
            data = jsonnum.loads(payload)
            key = (str(data["app"]), str(data["topic"]))
            event, subject, info = str(data["event"]), str(data["subject"]), data.get("info")
            if event not in ("joined", "left"):
                raise ValueError(event)
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed presence notification: %r", payload[:200])
            return
        watched = self.watched.get(key)
        if watched is None:
            return
        if not watched.loaded:
            watched.pending.append((event, subject, info))
            return
        self._apply(key, watched, event, subject, info)

    def listening_again(self) -> None:
        """The LISTEN connection is (re)established: announcements may have been missed."""
        self._reload(set(self.watched))

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._flusher(), name="picloud-presence-flush"),
            asyncio.create_task(self._beater(), name="picloud-presence-beat"),
            asyncio.create_task(self._loader(), name="picloud-presence-load"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.active:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._execute("presence_depart", {}), 2)

    # -- internals ----------------------------------------------------------------------
    def _send(self, sub: Subscriber, raw: bytes) -> None:
        if sub.done.done() or sub.transport.is_closing():
            return
        data = chunk(raw) if sub.chunked else raw
        buffered = sub.transport.get_write_buffer_size()
        if buffered and buffered + len(data) > self.max_bytes:
            sub.overflow()  # as the hub does: the client resumes with its cursor
            return
        sub.written += len(data)
        sub.transport.write(data)

    def _send_all(self, sub: Subscriber, topic: str, watched: Watched) -> None:
        raw = b"".join(presence_frame(topic, "joined", s, i) for s, i in watched.present.items())
        if raw:
            self._send(sub, raw)

    def _apply(
        self, key: ChannelKey, watched: Watched, event: str, subject: str, info: Any
    ) -> None:
        if event == "joined":
            if subject in watched.present:
                return
            watched.present[subject] = info
        else:
            if subject not in watched.present:
                return
            del watched.present[subject]
        raw = presence_frame(key[1], event, subject, info)
        for sub, primed in list(watched.subs.items()):
            if primed:
                self._send(sub, raw)

    def _reload(self, keys: set[ChannelKey]) -> None:
        for key in keys:
            watched = self.watched.get(key)
            if watched is not None:
                watched.loaded = False
        self.to_load |= keys
        self.load.set()

    def _loaded(self, key: ChannelKey, now: dict[str, Any]) -> None:
        watched = self.watched.get(key)
        if watched is None or watched.loaded:
            return
        before = watched.present
        watched.present = now
        topic = key[1]
        gone = b"".join(
            presence_frame(topic, "left", s, i) for s, i in before.items() if s not in now
        )
        came = b"".join(
            presence_frame(topic, "joined", s, i) for s, i in now.items() if s not in before
        )
        for sub, primed in list(watched.subs.items()):
            if primed:
                if gone or came:
                    self._send(sub, gone + came)
            else:
                self._send_all(sub, topic, watched)
            watched.subs[sub] = True
        watched.loaded = True
        pending, watched.pending = watched.pending, []
        for event, subject, info in pending:
            self._apply(key, watched, event, subject, info)

    async def _execute(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        params = {"node_id": self.state.node_id, "lease_sec": self.lease_sec, **params}
        async with self.state.db.connection() as conn:
            cur = await conn.execute(q(name), params)
            return await cur.fetchall() if cur.description else []

    async def _loader(self) -> None:
        failures = 0
        while True:
            await self.load.wait()
            self.load.clear()
            keys = [k for k in self.to_load if k in self.watched]
            self.to_load.clear()
            if not keys:
                continue
            params = {"app_ids": [k[0] for k in keys], "topics": [k[1] for k in keys]}
            try:
                rows = await self._execute("presence_snapshot", params)
                failures = 0
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("could not read presence (%s); retrying", exc)
                self.to_load.update(keys)
                await asyncio.sleep(RETRY_SEC[min(failures, len(RETRY_SEC) - 1)])
                failures += 1
                self.load.set()
                continue
            found: dict[ChannelKey, dict[str, Any]] = {k: {} for k in keys}
            for row in rows:
                found[(row["app_id"], row["topic"])][row["subject"]] = row["info"]
            for key, now in found.items():
                self._loaded(key, now)

    async def _flusher(self) -> None:
        failures = 0
        while True:
            await self.flush.wait()
            self.flush.clear()
            joins, self.joins = self.joins, {}
            leaves, self.leaves = self.leaves, set()
            self.written |= joins.keys()
            params = {
                "leave_ids": sorted(leaves),
                "conn_ids": list(joins),
                "app_ids": [t.app_id for t in joins.values()],
                "topics": [t.topic for t in joins.values()],
                "subjects": [t.subject for t in joins.values()],
                "infos": [t.info for t in joins.values()],
            }
            try:
                rows = await self._execute("presence_sync", params)
                failures = 0
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("could not write presence (%s); retrying", exc)
                # Joins of streams that closed meanwhile are leaves now (already queued).
                self.joins = {n: t for n, t in joins.items() if n in self.tracked} | self.joins
                self.leaves |= leaves
                await asyncio.sleep(RETRY_SEC[min(failures, len(RETRY_SEC) - 1)])
                failures += 1
                self.flush.set()
                continue
            self.written -= leaves
            if not rows[0]["known"]:
                # Forgotten (new node, stalled past the lease, database restarted): every
                # stream this node holds is joined again.
                missing = {n: t for n, t in self.tracked.items() if n not in joins}
                if missing:
                    self.joins.update(missing)
                    self.flush.set()

    async def _beater(self) -> None:
        while True:
            await asyncio.sleep(self.beat_sec)
            if not self.active:
                continue
            self.flush.set()  # an empty sync renews the lease
            try:
                await self._execute("presence_expire", {})
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("could not expire silent nodes' presence (%s)", exc)
