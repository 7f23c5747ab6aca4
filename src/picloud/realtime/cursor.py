"""The resume cursor: the SSE ``id:`` of a message, sent back as ``Last-Event-ID``.

Opaque to clients and versioned: ``v1.<epoch>.<seq>``, where ``epoch`` names the topic's
incarnation (a new one after delete + create) and ``seq`` the message's number in it. A
plain ``<seq>`` (the format from before epochs) is still read, as a position in the
topic's current incarnation. A multiplexed stream (several topics) has one cursor for all
of them, ``v1m.<base64url>``, holding every topic's epoch and seq. Numbers are ASCII
digits within PostgreSQL's bigint range (``str.isdigit()`` also accepts '²' and other
digits that are not ASCII).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

BIGINT_MAX = 2**63 - 1
_NUMBER = r"(0|[1-9][0-9]{0,18})"
_V1 = re.compile(rf"v1\.{_NUMBER}\.{_NUMBER}")
_PLAIN = re.compile(_NUMBER)

RULE = "a cursor is an event id from this stream ('v1.<epoch>.<seq>', or a plain message id)"


@dataclass(frozen=True, slots=True)
class Cursor:
    seq: int
    epoch: int | None = None  # None: a plain message id, from before epochs


def _number(text: str) -> int:
    value = int(text)
    if value > BIGINT_MAX:
        raise ValueError(RULE)
    return value


def parse_cursor(text: str) -> Cursor:
    """The cursor in ``text``, exactly (no sign, spaces or other digits); ValueError(RULE)
    if malformed. (HTTP itself strips the spaces around a header's value.)"""
    if match := _V1.fullmatch(text):
        return Cursor(_number(match[2]), _number(match[1]))
    if _PLAIN.fullmatch(text):
        return Cursor(_number(text))
    raise ValueError(RULE)


def format_cursor(epoch: int, seq: int) -> str:
    """The cursor of message ``seq`` of the topic incarnation ``epoch``."""
    return f"v1.{epoch}.{seq}"


# A multiplexed stream's cursor: 'v1m.' + base64url (no padding) of comma-separated
# '<epoch>.<seq>.<topic>' entries, one per topic (topic names never contain a comma).
_MULTI = re.compile(r"v1m\.([A-Za-z0-9_-]{1,8192})")
_ENTRY = re.compile(rf"{_NUMBER}\.{_NUMBER}\.([A-Za-z0-9_.:-]{{1,128}})")
MULTI_RULE = "a multiplexed stream's cursor is an event id from that stream ('v1m.…')"


def parse_stream_cursor(text: str) -> dict[str, Cursor]:
    """Every topic's position in a multiplexed stream's cursor ``text``; ValueError
    (MULTI_RULE) if malformed, a topic is named twice, or it is another kind of cursor."""
    match = _MULTI.fullmatch(text)
    if match is None or len(match[1]) % 4 == 1:
        raise ValueError(MULTI_RULE)
    try:
        payload = base64.urlsafe_b64decode(match[1] + "=" * (-len(match[1]) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(MULTI_RULE) from None
    positions: dict[str, Cursor] = {}
    for entry in payload.split(","):
        found = _ENTRY.fullmatch(entry)
        if found is None or found[3] in positions:
            raise ValueError(MULTI_RULE)
        try:
            positions[found[3]] = Cursor(_number(found[2]), _number(found[1]))
        except ValueError:
            raise ValueError(MULTI_RULE) from None
    return positions


def format_stream_cursor(positions: Mapping[str, tuple[int, int]]) -> str:
    """The cursor of a multiplexed stream at ``positions`` (topic -> (epoch, seq))."""
    payload = ",".join(f"{e}.{s}.{t}" for t, (e, s) in positions.items())
    return "v1m." + base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
