"""What a subscription yields: messages, and the stream's named events."""

from __future__ import annotations

import json
import re
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


@dataclass(frozen=True, slots=True)
class Reset:
    """The resume position was not one of the topic's current incarnation (it was deleted
    and created again: a new ``epoch``, or the position was beyond its head): the stream
    goes on from that incarnation's first retained message, ``oldest`` (None: it has none
    yet). Drop what you hold of the topic."""

    topic: str
    epoch: int
    oldest: int | None


Event = Message[T] | HistoryTruncated | Reset


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
    return HistoryTruncated(_int(obj, "requested"), _int(obj, "oldest"))


def parse_reset(data: str) -> Reset:
    obj = _object(data)
    oldest = None if obj.get("oldest") is None else _int(obj, "oldest")
    return Reset(str(obj.get("topic", "")), _int(obj, "epoch"), oldest)


# A message's SSE id: ``v1.<epoch>.<seq>`` (or a bare ``<seq>`` from older servers).
_CURSOR = re.compile(r"(?:v1\.[0-9]{1,19}\.)?([0-9]{1,19})")


def parse_message_fields(event_id: str, data: str) -> tuple[int, str, Any, str]:
    """The sequence number, topic, payload and published_at of a message frame."""
    found = _CURSOR.fullmatch(event_id)
    if found is None:
        raise ProtocolError(f"message id is not a stream cursor: {event_id!r}")
    obj = _object(data)
    return (
        int(found[1]),
        str(obj.get("topic", "")),
        obj.get("message"),
        str(obj.get("published_at", "")),
    )
