"""What a subscription yields: messages, and the stream's named events."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Message(Generic[T]):
    """A published message: ``id`` is its per-topic sequence number, ``cursor`` the
    stream's opaque resume position after it (the SSE id; ``Last-Event-ID`` on resume)."""

    id: int
    topic: str
    message: T
    published_at: str
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryTruncated:
    """The resume position ``requested`` is older than the retained log, which now starts
    at ``oldest``: messages in between are gone (refetch your state)."""

    requested: int
    oldest: int
    topic: str | None = None  # which topic, on a stream of several


@dataclass(frozen=True, slots=True)
class Reset:
    """The resume position was not one of the topic's current incarnation (it was deleted
    and created again: a new ``epoch``, or the position was beyond its head): the stream
    goes on from that incarnation's first retained message, ``oldest`` (None: it has none
    yet). Drop what you hold of the topic."""

    topic: str
    epoch: int
    oldest: int | None


@dataclass(frozen=True, slots=True)
class Presence:
    """On a presence topic: ``subject`` ``joined`` (its first connection anywhere) or
    ``left`` (after its last); ``info`` is what its token carries. A stream is first told
    of everyone already present (as joins), again after each reconnect: keep a set."""

    topic: str
    event: str  # "joined" | "left"
    subject: str
    info: Any = None


Event = Message[T] | HistoryTruncated | Reset | Presence


class ProtocolError(ValueError):
    """A frame the client cannot make sense of."""


def _object(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"event data is not JSON: {data[:80]!r}") from exc
    if not isinstance(value, dict):
        raise ProtocolError(f"event data is not a JSON object: {data[:80]!r}")
    return value


def _int(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"{name!r} is not an integer: {value!r}")
    return value


def parse_history_truncated(data: str) -> HistoryTruncated:
    obj = _object(data)
    topic = obj.get("topic")
    return HistoryTruncated(
        _int(obj, "requested"), _int(obj, "oldest"), topic if isinstance(topic, str) else None
    )


def parse_reset(data: str) -> Reset:
    obj = _object(data)
    oldest = None if obj.get("oldest") is None else _int(obj, "oldest")
    return Reset(str(obj.get("topic", "")), _int(obj, "epoch"), oldest)


def parse_presence(data: str) -> Presence:
    obj = _object(data)
    event, subject = obj.get("event"), obj.get("subject")
    if event not in ("joined", "left") or not isinstance(subject, str):
        raise ProtocolError(f"not a presence event: {data[:80]!r}")
    return Presence(str(obj.get("topic", "")), event, subject, obj.get("info"))


# A message's SSE id: ``v1.<epoch>.<seq>`` (or a bare ``<seq>`` from older servers).
_CURSOR = re.compile(r"(?:v1\.[0-9]{1,19}\.)?([0-9]{1,19})")


def _varints(data: bytes) -> list[int]:
    values: list[int] = []
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
        else:
            values.append(value)
            value = shift = 0
    return values


def _stream_seq(event_id: str, topic: str, topics: Sequence[str]) -> int | None:
    """The topic's sequence number in the cursor of a stream of ``topics``. The cursor is
    opaque to applications; this reads it only to number messages. ``v2m.<base64url>``: a
    4-byte fingerprint of the sorted topic set, then varints (7 bits a byte, low first):
    the smallest epoch, and per topic in sorted order its epoch's offset and its seq.
    Older servers sent ``v1m.<base64url of '<epoch>.<seq>.<topic>' entries joined by ','>``.
    """
    compact = event_id.startswith("v2m.")
    if not compact and not event_id.startswith("v1m."):
        return None
    body = event_id[4:]
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return None
    if compact:
        names = sorted(topics)
        numbers = _varints(data[4:])
        if topic not in names or len(numbers) != 1 + 2 * len(names):
            return None
        return numbers[2 + 2 * names.index(topic)]
    try:
        payload = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    for entry in payload.split(","):
        _epoch, _, rest = entry.partition(".")
        seq, _, name = rest.partition(".")
        if name == topic and seq.isascii() and seq.isdigit():
            return int(seq)
    return None


def parse_message_fields(
    event_id: str, data: str, topics: Sequence[str] = ()
) -> tuple[int, str, Any, str]:
    """The sequence number, topic, payload and published_at of a message frame (of a
    stream of ``topics``, when several)."""
    obj = _object(data)
    topic = str(obj.get("topic", ""))
    found = _CURSOR.fullmatch(event_id)
    seq = int(found[1]) if found is not None else _stream_seq(event_id, topic, topics)
    if seq is None:
        raise ProtocolError(f"message id is not a stream cursor: {event_id!r}")
    return (
        seq,
        topic,
        obj.get("message"),
        str(obj.get("published_at", "")),
    )
