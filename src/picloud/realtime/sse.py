"""Server-Sent Events framing.

A frame is built once and written to every subscriber: ``raw`` is the SSE text, ``wire``
the same bytes as one HTTP/1.1 chunk (what goes on a chunked response's socket).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from picloud.realtime.cursor import format_cursor

HEARTBEAT = b":heartbeat\n\n"
OPENED = b":ok\n\n"


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of HTTP/1.1 chunked transfer encoding."""
    return b"%x\r\n%b\r\n" % (len(data), data)


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int
    raw: bytes
    wire: bytes

    @property
    def body(self) -> bytes:
        """The frame without its ``id:`` line (a multiplexed stream puts its own)."""
        return self.raw[self.raw.index(b"\n") + 1 :]

    @classmethod
    def message(cls, epoch: int, seq: int, data: str) -> Frame:
        """A message event: ``data`` is the JSON text {"topic","message","published_at"};
        its id is the resume cursor of message ``seq`` of topic incarnation ``epoch``."""
        raw = b"id: %b\ndata: %b\n\n" % (format_cursor(epoch, seq).encode(), data.encode())
        return cls(seq, raw, chunk(raw))


HEARTBEAT_WIRE = chunk(HEARTBEAT)


def history_truncated(requested: int, oldest: int, topic: str | None = None) -> bytes:
    """The named event sent when Last-Event-ID is older than the retained log (naming the
    topic on a multiplexed stream)."""
    fields: dict[str, object] = {"requested": requested, "oldest": oldest}
    if topic is not None:
        fields["topic"] = topic
    data = orjson.dumps(fields)
    return b"event: history_truncated\ndata: %b\n\n" % data


def reset(
    topic: str, epoch: int, oldest: int | None, after: int, cursor: bytes | None = None
) -> bytes:
    """The named event sent when a cursor is not a position in the topic's current
    incarnation (another epoch, or beyond its head): the stream continues with this
    incarnation's first retained message (``oldest``; None when it has none). Its id is the
    cursor just before that message, so a reconnect right after it does not reset again
    (``cursor``: a multiplexed stream's cursor, already holding that position).
    """
    data = orjson.dumps({"topic": topic, "epoch": epoch, "oldest": oldest})
    event_id = cursor if cursor is not None else format_cursor(epoch, after).encode()
    return b"id: %b\nevent: reset\ndata: %b\n\n" % (event_id, data)
