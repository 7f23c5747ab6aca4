"""A multiplexed stream: several topics on one SSE connection, with one resume cursor.

The stream is one hub Subscriber, a member of the channel of each of its topics. Where it
stands is a ``Position``: the stream's ``Shape`` (app, topics sorted, their epochs) and
every topic's last sequence number sent. Positions are immutable and interned, so streams
of the same topics at the same place hold the same object. The step a message makes from
a position (the new position, and the frame's SSE text with the stream's cursor as its
``id:``) depends on nothing else, so the hub builds it once per delivery and position and
hands the same bytes to every stream that was there (``Step``), instead of once per stream.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence

from picloud.realtime.cursor import compact_cursor, compact_parts
from picloud.realtime.sse import Frame, chunk

ChannelKey = tuple[str, str]  # (app id text, topic name)


class Shape:
    """What a multiplexed stream is of: an app's topics (sorted) in given incarnations."""

    __slots__ = ("__weakref__", "epochs", "head", "index", "keys", "offsets", "topics")

    def __init__(self, app_id: str, topics: tuple[str, ...], epochs: tuple[int, ...]) -> None:
        self.topics = topics
        self.epochs = epochs
        self.index = {t: i for i, t in enumerate(topics)}
        self.keys: tuple[ChannelKey, ...] = tuple((app_id, t) for t in topics)
        # The cursor's fixed parts: fingerprint and smallest epoch, each epoch's offset.
        self.head, self.offsets = compact_parts(topics, epochs)

    def cursor(self, seqs: Sequence[int]) -> bytes:
        """The compact cursor (realtime.cursor) of this stream at ``seqs``."""
        return compact_cursor(self.head, self.offsets, seqs)


_SHAPES: weakref.WeakValueDictionary[tuple[str, tuple[str, ...], tuple[int, ...]], Shape] = (
    weakref.WeakValueDictionary()
)
_POSITIONS: weakref.WeakValueDictionary[tuple[Shape, tuple[int, ...]], Position] = (
    weakref.WeakValueDictionary()
)


def shape_of(app_id: str, epochs: Mapping[str, int]) -> Shape:
    """The (interned) shape of a stream of ``epochs`` (topic -> epoch) of app ``app_id``."""
    topics = tuple(sorted(epochs))
    key = (app_id, topics, tuple(epochs[t] for t in topics))
    shape = _SHAPES.get(key)
    if shape is None:
        shape = _SHAPES[key] = Shape(app_id, topics, key[2])
    return shape


class Position:
    """Where a multiplexed stream stands: ``seqs[i]`` is the last sequence number sent (or
    skipped on purpose) of ``shape.topics[i]``. Interned: build with ``position``."""

    __slots__ = ("__weakref__", "_cursor", "seqs", "shape")

    def __init__(self, shape: Shape, seqs: tuple[int, ...]) -> None:
        self.shape = shape
        self.seqs = seqs
        self._cursor: bytes | None = None

    @property
    def cursor(self) -> bytes:
        """The stream's resume cursor at this position."""
        if self._cursor is None:
            self._cursor = self.shape.cursor(self.seqs)
        return self._cursor

    def seq(self, topic: str) -> int:
        return self.seqs[self.shape.index[topic]]

    def advance(self, topic: str, frames: Sequence[Frame]) -> Step:
        """The step ``frames`` (ascending) of ``topic`` make from here; frames at or before
        the topic's position are left out."""
        shape = self.shape
        index = shape.index[topic]
        seqs = list(self.seqs)
        last = seqs[index]
        texts = []
        for f in frames:
            if f.seq <= last:
                continue
            seqs[index] = last = f.seq
            texts.append(b"id: %b\n%b" % (shape.cursor(seqs), f.body))
        if not texts:
            return Step(self, [])
        after = position(shape, tuple(seqs))
        if after._cursor is None:
            after._cursor = texts[-1][4 : texts[-1].index(b"\n")]
        return Step(after, texts)


def position(shape: Shape, seqs: tuple[int, ...]) -> Position:
    """The (interned) position of a stream of ``shape`` at ``seqs``."""
    key = (shape, seqs)
    found = _POSITIONS.get(key)
    if found is None:
        found = _POSITIONS[key] = Position(shape, seqs)
    return found


def start_position(app_id: str, starts: Mapping[str, tuple[int, int]]) -> Position:
    """The position of a new stream of app ``app_id`` at ``starts`` (topic -> (epoch,
    last sequence number seen))."""
    shape = shape_of(app_id, {t: e for t, (e, _) in starts.items()})
    return position(shape, tuple(starts[t][1] for t in shape.topics))


class Step:
    """What some frames of one topic do to a stream at a position: where it is after them,
    and their SSE text (``raw``) and, lazily, the same as HTTP/1.1 chunks (``wire``), with
    each frame's size (for the hub's unsent-frames accounting)."""

    __slots__ = ("_wire", "_wire_sizes", "count", "position", "raw", "raw_sizes")

    def __init__(self, after: Position, texts: list[bytes]) -> None:
        self.position = after
        self.count = len(texts)
        self.raw = b"".join(texts)
        self.raw_sizes = tuple(len(t) for t in texts)
        self._wire: bytes | None = None
        self._wire_sizes: tuple[int, ...] = ()

    def data(self, chunked: bool) -> tuple[bytes, tuple[int, ...]]:
        """The bytes to write and each frame's size in them."""
        if not chunked:
            return self.raw, self.raw_sizes
        if self._wire is None:
            parts = []
            start = 0
            for size in self.raw_sizes:
                parts.append(chunk(self.raw[start : start + size]))
                start += size
            self._wire = b"".join(parts)
            self._wire_sizes = tuple(len(p) for p in parts)
        return self._wire, self._wire_sizes
