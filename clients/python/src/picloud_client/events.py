"""What a subscription yields: messages, and the stream's named events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Message(Generic[T]):
    """A published message; ``id`` is its per-topic sequence number (the SSE id)."""

    id: int
    topic: str
    message: T
    published_at: str


@dataclass(frozen=True, slots=True)
class HistoryTruncated:
    """The resume position ``requested`` is older than the retained log, which now starts
    at ``oldest``: messages in between are gone (refetch your state)."""

    requested: int
    oldest: int


@dataclass(frozen=True, slots=True)
class Reset:
    """The topic was recreated (a new ``epoch``); its log now starts at ``oldest``."""

    topic: str
    epoch: int
    oldest: int


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
    return Reset(str(obj.get("topic", "")), _int(obj, "epoch"), _int(obj, "oldest"))


def parse_message_fields(event_id: str, data: str) -> tuple[int, str, Any, str]:
    """The id, topic, payload and published_at of a message frame."""
    if not (event_id.isascii() and event_id.isdigit()):
        raise ProtocolError(f"message id is not a sequence number: {event_id!r}")
    obj = _object(data)
    return (
        int(event_id),
        str(obj.get("topic", "")),
        obj.get("message"),
        str(obj.get("published_at", "")),
    )
