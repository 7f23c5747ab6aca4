"""A multiplexed stream: several topics on one SSE connection, with one resume cursor.

Each topic of the stream has its own hub Subscriber (its own channel, replay and backlog);
they share one Mux, which holds every topic's position — the stream's cursor, sent as the
``id:`` of every frame — and the accounting of what was written to the one transport (so
the hub's "frames still unsent" limit counts the connection, not each topic apart).
"""

from __future__ import annotations

from collections import deque

from picloud.realtime.cursor import format_stream_cursor
from picloud.realtime.sse import Frame, chunk

# Frame texts by (topic, positions after it): see Mux.encode. Bounded; cleared when full.
_TEXTS: dict[tuple[str, tuple[tuple[str, tuple[int, int]], ...]], bytes] = {}
_TEXTS_MAX = 4096


class Mux:
    __slots__ = ("chunked", "ends", "positions", "written")

    def __init__(self, positions: dict[str, tuple[int, int]], *, chunked: bool) -> None:
        self.positions = positions  # topic -> (epoch, last seq sent), in request order
        self.chunked = chunked
        self.written = 0
        self.ends: deque[int] = deque()

    def cursor(self) -> bytes:
        return format_stream_cursor(self.positions).encode()

    def encode(self, topic: str, frames: list[Frame]) -> list[bytes]:
        """The SSE text of ``frames`` of ``topic``, each with the stream's cursor after it
        (moving the topic's position)."""
        epoch = self.positions[topic][0]
        out = []
        for f in frames:
            self.positions[topic] = (epoch, f.seq)
            # The positions after the frame (and which topic it is of) determine its whole
            # text; live streams of the same topics share them, so it is built once per
            # frame rather than once per stream.
            key = (topic, tuple(self.positions.items()))
            text = _TEXTS.get(key)
            if text is None:
                if len(_TEXTS) >= _TEXTS_MAX:
                    _TEXTS.clear()
                text = _TEXTS[key] = b"id: %b\n%b" % (self.cursor(), f.body)
            out.append(text)
        return out

    def write(self, topic: str, frames: list[Frame]) -> bytes:
        """What to hand the transport for live ``frames`` of ``topic`` (accounted)."""
        parts = self.encode(topic, frames)
        if self.chunked:
            parts = [chunk(p) for p in parts]
        written = self.written
        for p in parts:
            written += len(p)
            self.ends.append(written)
        self.written = written
        return b"".join(parts)
