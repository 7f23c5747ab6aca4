"""The resume cursor: the SSE ``id:`` of a message, sent back as ``Last-Event-ID``.

Opaque to clients and versioned: ``v1.<epoch>.<seq>``, where ``epoch`` names the topic's
incarnation (a new one after delete + create) and ``seq`` the message's number in it. A
plain ``<seq>`` (the format from before epochs) is still read, as a position in the
topic's current incarnation. Numbers are ASCII digits within PostgreSQL's bigint range
(``str.isdigit()`` also accepts '²' and other digits that are not ASCII).

A multiplexed stream (several topics) has one cursor for all of them, holding every
topic's epoch and seq. It is written compact, ``v2m.<base64url>`` of a 4-byte fingerprint
of the stream's topic set (sorted) followed by varints: the smallest epoch, then per topic
in sorted order its epoch's offset from that one and its seq. It only means something on a
stream of the same topics (the fingerprint says which). The older ``v1m.<base64url>`` form
(every topic's name, epoch and seq spelled out) is still read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
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
MULTI_RULE = (
    "a multiplexed stream's cursor is an event id from that stream ('v2m.…', or the 'v1m.…'"
    " of older servers)"
)


def parse_stream_cursor(text: str, topics: Iterable[str] = ()) -> dict[str, Cursor]:
    """Every topic's position in a multiplexed stream's cursor ``text``, for a stream of
    ``topics`` (a ``v2m.`` cursor holds positions, not names: it is read against them);
    ValueError (MULTI_RULE) if malformed, a topic is named twice, or it is another kind of
    cursor, ValueError(OTHER_TOPICS) if it is the cursor of a stream of other topics."""
    if text.startswith("v2m."):
        return _parse_compact(text, sorted(topics))
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


def format_stream_cursor_v1(positions: Mapping[str, tuple[int, int]]) -> str:
    """The older, long form of a multiplexed stream's cursor (still read, no longer sent)."""
    payload = ",".join(f"{e}.{s}.{t}" for t, (e, s) in positions.items())
    return "v1m." + base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


# -- the compact form: 'v2m.' + base64url(fingerprint[4] + varints) -------------------------
OTHER_TOPICS = (
    "this cursor is of a stream of other topics: resume with a cursor from a stream of"
    " exactly these ?topic= (in any order)"
)
_COMPACT = re.compile(r"v2m\.([A-Za-z0-9_-]{7,2048})")


def fingerprint(topics: Sequence[str]) -> bytes:
    """4 bytes naming a set of topics (``topics`` sorted; names never contain a newline)."""
    return hashlib.sha256("\n".join(topics).encode()).digest()[:4]


def varint(value: int) -> bytes:
    """``value`` (>= 0) as an unsigned LEB128 varint: 7 bits a byte, low bits first."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def compact_parts(topics: Sequence[str], epochs: Sequence[int]) -> tuple[bytes, tuple[bytes, ...]]:
    """The fixed parts of the compact cursors of a stream of ``topics`` (sorted) in
    incarnations ``epochs`` (same order): fingerprint and smallest epoch, and each topic's
    epoch offset from it (see ``compact_cursor``)."""
    base = min(epochs)
    return fingerprint(topics) + varint(base), tuple(varint(e - base) for e in epochs)


def compact_cursor(head: bytes, offsets: Sequence[bytes], seqs: Sequence[int]) -> bytes:
    """The compact cursor of a stream (``head``, ``offsets``: its ``compact_parts``) at
    ``seqs`` (in sorted topic order)."""
    body = b"".join(o + varint(s) for o, s in zip(offsets, seqs, strict=True))
    return b"v2m." + base64.urlsafe_b64encode(head + body).rstrip(b"=")


def format_stream_cursor(positions: Mapping[str, tuple[int, int]]) -> str:
    """The cursor of a multiplexed stream at ``positions`` (topic -> (epoch, seq))."""
    topics = sorted(positions)
    head, offsets = compact_parts(topics, [positions[t][0] for t in topics])
    return compact_cursor(head, offsets, [positions[t][1] for t in topics]).decode()


def _read_varints(data: bytes) -> list[int]:
    """The varints filling ``data`` exactly, each minimal (no 0x80 padding) and within
    bigint; ValueError otherwise."""
    values: list[int] = []
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                raise ValueError(MULTI_RULE)
            continue
        if byte == 0 and shift:  # an over-long encoding: one number, one spelling
            raise ValueError(MULTI_RULE)
        if value > BIGINT_MAX:
            raise ValueError(MULTI_RULE)
        values.append(value)
        value = shift = 0
    if shift:
        raise ValueError(MULTI_RULE)  # cut in the middle of a number
    return values


def _parse_compact(text: str, topics: list[str]) -> dict[str, Cursor]:
    match = _COMPACT.fullmatch(text)
    if match is None or len(match[1]) % 4 == 1:
        raise ValueError(MULTI_RULE)
    try:
        data = base64.urlsafe_b64decode(match[1] + "=" * (-len(match[1]) % 4))
    except binascii.Error:
        raise ValueError(MULTI_RULE) from None
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode() != match[1]:
        raise ValueError(MULTI_RULE)  # stray bits in the last character
    if len(data) < 5:
        raise ValueError(MULTI_RULE)
    if data[:4] != fingerprint(topics):
        raise ValueError(OTHER_TOPICS)
    numbers = _read_varints(data[4:])
    if len(numbers) != 1 + 2 * len(topics):
        raise ValueError(MULTI_RULE)
    base = numbers[0]
    positions: dict[str, Cursor] = {}
    for i, topic in enumerate(topics):
        epoch = base + numbers[1 + 2 * i]
        if epoch > BIGINT_MAX:
            raise ValueError(MULTI_RULE)
        positions[topic] = Cursor(numbers[2 + 2 * i], epoch)
    return positions
