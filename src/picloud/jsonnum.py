"""JSON numbers that survive the trip through jsonb and back out of the API.

jsonb holds any numeric, the encoder (orjson) only signed or unsigned 64-bit integers
and doubles. Writing, the API refuses numbers that would not come back the same
(``check_numbers``); reading, the database's JSON is parsed so that a number outside those
ranges — which psql can always write — is kept as its own JSON text (an
``orjson.Fragment``) and emitted unchanged instead of failing the encoder.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
from psycopg.types.json import set_json_dumps, set_json_loads

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _int(text: str) -> int | orjson.Fragment:
    value = int(text)
    if INT64_MIN <= value <= INT64_MAX:
        return value
    return orjson.Fragment(text)


DOUBLE_DIGITS = 17


def _float(text: str) -> float | orjson.Fragment:
    # jsonb prints numerics in full, without exponent. One with more significant digits
    # than a double holds (which also covers values too small or large for one) is kept as
    # written rather than rounded, turned into 0.0 or into infinity.
    value = float(text)
    digits = text.lstrip("-").split("e")[0].split("E")[0].replace(".", "").strip("0")
    if math.isinf(value) or (value == 0.0 and digits) or len(digits) > DOUBLE_DIGITS:
        return orjson.Fragment(text)
    return value


# Where orjson's reading may differ from the standard parser's with the hooks above: a
# number with an exponent (a digit then e/E), or a run of 17 or more digits and points,
# which any number outside signed 64-bit or beyond a double's digits contains. Text
# without either (nearly all of it) is read by orjson, the same values at a fraction of
# the cost; a string that merely looks so (a long id, "1e5") takes the slow road, as
# does anything orjson refuses (a lone surrogate escape).
_MAYBE_INEXACT_TEXT = re.compile(r"[0-9][eE]|[0-9.]{17}")
_MAYBE_INEXACT_BYTES = re.compile(rb"[0-9][eE]|[0-9.]{17}")


def loads(data: str | bytes) -> Any:
    """The database's JSON text as Python values; never fails on a number."""
    if isinstance(data, str):
        plain = _MAYBE_INEXACT_TEXT.search(data) is None
    else:
        plain = _MAYBE_INEXACT_BYTES.search(data) is None
    if plain:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data, parse_int=_int, parse_float=_float)


EXACT_FLOAT_FROM = 2.0**53


def _exact(value: Any) -> Any:
    if isinstance(value, float):
        # Such a double prints shortest as e.g. 2.251799813685243e+16, which jsonb keeps
        # as the integer 22517998136852430: another number. Its exact digits, with a
        # decimal point, come back as this very double.
        if value.is_integer() and abs(value) >= EXACT_FLOAT_FROM:
            return orjson.Fragment(f"{int(value)}.0".encode())
        return value
    if isinstance(value, list):
        return [_exact(v) for v in value]
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    return value


# In orjson's text of a value, a double at or beyond 2**53 in magnitude shows as a run of
# 16 or more digits or with an exponent: without either, _exact would change nothing.
_MAYBE_LARGE_DOUBLE = re.compile(rb"[0-9][eE]|[0-9]{16}")


def dumps(value: Any) -> str:
    """JSON text of a value for jsonb, such that reading it back gives the same value."""
    text = orjson.dumps(value)
    if _MAYBE_LARGE_DOUBLE.search(text) is not None:
        text = orjson.dumps(_exact(value))
    return text.decode()


def install() -> None:
    """Make psycopg read and write json/jsonb with ``loads`` and ``dumps`` (every
    connection made afterwards)."""
    set_json_loads(loads)
    set_json_dumps(dumps)


def _scan(value: Any) -> tuple[str | None, bool]:
    """The first integer outside signed 64-bit (its path), and whether a float at or beyond
    2**63 in magnitude occurs (orjson reads an integer too long for 64 bits as one)."""
    large_float = False
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return f"{where}: the integer is outside the signed 64-bit range", large_float
        elif isinstance(item, float):
            large_float = large_float or not -(2.0**63) < item < 2.0**63
        elif isinstance(item, dict):
            stack.extend((v, f"{where}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
    return None, large_float


# An integer outside signed 64-bit, and a double orjson read from one (2**63 or more in
# magnitude, written without exponent), have 19 digits or more in a row.
_MAYBE_LONG_INTEGER = re.compile(rb"[0-9]{19}")


def number_problem(raw: bytes, value: Any) -> str | None:
    """Where the request body ``raw`` (parsed by orjson as ``value``) holds a number that
    would not read back the same: an integer outside signed 64-bit. (Doubles are kept;
    orjson already refuses a number beyond double, such as ``1e400``.)"""
    if _MAYBE_LONG_INTEGER.search(raw) is None:
        return None  # no such integer can be written in fewer digits
    problem, large_float = _scan(value)
    if problem is None and large_float:
        # Was it written as an integer? The standard parser keeps its every digit.
        problem, _ = _scan(json.loads(raw))
    return problem
