"""The resume cursor: the SSE ``id:`` of a message, sent back as ``Last-Event-ID``.

Opaque to clients and versioned: ``v1.<epoch>.<seq>``, where ``epoch`` names the topic's
incarnation (a new one after delete + create) and ``seq`` the message's number in it. A
plain ``<seq>`` (the format from before epochs) is still read, as a position in the
topic's current incarnation. Numbers are ASCII digits within PostgreSQL's bigint range
(``str.isdigit()`` also accepts '²' and other digits that are not ASCII).
"""

from __future__ import annotations

import re
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
