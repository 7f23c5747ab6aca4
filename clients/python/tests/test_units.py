"""Pure parts: event frames (including ``reset``, which servers of a later version
send) and validators."""

from __future__ import annotations

from typing import Any

import pytest
from picloud.realtime.cursor import format_stream_cursor, format_stream_cursor_v1

from picloud_client import HistoryTruncated, ProtocolError, Reset
from picloud_client.events import parse_history_truncated, parse_message_fields, parse_reset
from picloud_client.validate import as_parser


def test_reset_frames() -> None:
    assert parse_reset('{"topic": "t", "epoch": 2, "oldest": 1}') == Reset("t", 2, 1)
    assert parse_reset('{"topic": "t", "epoch": 2, "oldest": null}') == Reset("t", 2, None)
    with pytest.raises(ProtocolError):
        parse_reset('{"topic": "t", "epoch": "2", "oldest": 1}')


def test_history_truncated_frames() -> None:
    assert parse_history_truncated('{"requested": 4, "oldest": 9}') == HistoryTruncated(4, 9)
    for bad in ("[]", "nope", '{"requested": true, "oldest": 1}'):
        with pytest.raises(ProtocolError):
            parse_history_truncated(bad)


def test_message_frames() -> None:
    data = '{"topic": "t", "message": [1], "published_at": "2026-01-01T00:00:00Z"}'
    assert parse_message_fields("12", data) == (12, "t", [1], "2026-01-01T00:00:00Z")
    assert parse_message_fields("v1.1767225600000000.12", data)[0] == 12
    for bad_id in ("", "-1", "1.5", "²", "v2.1.1", "v1..3", "v1.1.²"):
        with pytest.raises(ProtocolError):
            parse_message_fields(bad_id, data)


def test_message_numbers_in_a_stream_cursor() -> None:
    """A stream of several topics has one cursor; a message's number is read from it, in
    the compact form servers send now and in the older long one."""
    positions = {"t": (1767225600000000, 12), "orders.eu": (1767225600123456, 300), "b": (5, 0)}
    topics = ["t", "orders.eu", "b"]
    data = '{"topic": "t", "message": [1], "published_at": "2026-01-01T00:00:00Z"}'
    compact = format_stream_cursor(positions)
    assert compact.startswith("v2m.")
    assert parse_message_fields(compact, data, topics)[0] == 12
    assert parse_message_fields(compact, data, topics[::-1])[0] == 12, "in any order"
    other = data.replace('"t"', '"orders.eu"', 1)
    assert parse_message_fields(compact, other, topics)[:2] == (300, "orders.eu")
    assert parse_message_fields(format_stream_cursor_v1(positions), data)[0] == 12
    for bad_topics in ([], ["t"], ["t", "orders.eu", "b", "c"]):
        with pytest.raises(ProtocolError):
            parse_message_fields(compact, data, bad_topics)
    with pytest.raises(ProtocolError):
        parse_message_fields("v2m.!!", data, topics)


def test_as_parser() -> None:
    assert as_parser(None)({"a": 1}) == {"a": 1}
    assert as_parser(int)("7") == 7  # a class without model_validate is just called

    class Model:
        @classmethod
        def model_validate(cls, data: Any) -> str:
            return f"validated {data}"

    assert as_parser(Model)(3) == "validated 3"
