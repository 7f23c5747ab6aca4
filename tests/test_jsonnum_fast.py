"""picloud.jsonnum's orjson fast paths give what its exact (slow) paths give: reading the
database's JSON (``loads``), writing values for jsonb (``dumps``) and finding integers
out of range in request bodies (``number_problem``)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from picloud import jsonnum


def slow_loads(data: bytes) -> Any:
    return json.loads(data, parse_int=jsonnum._int, parse_float=jsonnum._float)


def slow_dumps(value: Any) -> str:
    return orjson.dumps(jsonnum._exact(value)).decode()


def slow_number_problem(raw: bytes, value: Any) -> str | None:
    problem, large_float = jsonnum._scan(value)
    if problem is None and large_float:
        problem, _ = jsonnum._scan(json.loads(raw))
    return problem


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types (Fragments by their text; 1 is not 1.0 here)."""
    if isinstance(a, orjson.Fragment) or isinstance(b, orjson.Fragment):
        return orjson.dumps(a) == orjson.dumps(b) and type(a) is type(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return repr(a) == repr(b)  # (tells -0.0 from 0.0)
    return bool(a == b)


# Number tokens as jsonb prints them (no exponent, any length) and as json text may hold
# them (exponents), around the edges of int64 and of a double's digits.
DIGITS = st.text("0123456789", min_size=1, max_size=25).map(lambda d: d.lstrip("0") or "0")
NUMBER = st.one_of(
    st.builds(lambda s, d: s + d, st.sampled_from(["", "-"]), DIGITS),
    st.builds(lambda s, i, f: f"{s}{i}.{f}", st.sampled_from(["", "-"]), DIGITS, DIGITS),
    st.builds(lambda m, e: f"{m}e{e}", DIGITS, st.integers(-400, 400)),
    st.sampled_from(
        [str(2**63 - 1), str(-(2**63)), str(2**63), str(2**64), "0.0", "-0.0", "-0", "1e400"]
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: orjson.dumps(f).decode()),
    st.integers(-(2**70), 2**70).map(str),
)
STRING = st.text(max_size=12).map(lambda s: json.dumps(s))
SCALAR = st.one_of(NUMBER, STRING, st.sampled_from(["true", "false", "null"]))
TEXT = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(STRING, inner), max_size=4).map(
            lambda kvs: "{" + ",".join(f"{k}:{v}" for k, v in kvs) + "}"
        ),
    ),
    max_leaves=10,
)


@settings(max_examples=600, deadline=None)
@given(TEXT)
def test_loads_reads_as_the_exact_parser(text: str) -> None:
    data = text.encode()
    try:
        expected = slow_loads(data)
    except ValueError:
        return  # not JSON to the standard parser either (e.g. a lone surrogate)
    assert same(jsonnum.loads(data), expected), text
    assert same(jsonnum.loads(text), expected), text


VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([2.0**53, -(2.0**60), 1e16, 1e300, 9007199254740991.0, 123456789.0])
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)


@settings(max_examples=600, deadline=None)
@given(VALUE)
def test_dumps_writes_as_the_exact_encoder(value: Any) -> None:
    assert jsonnum.dumps(value) == slow_dumps(value)


@settings(max_examples=600, deadline=None)
@given(TEXT)
def test_number_problem_finds_what_the_full_scan_finds(text: str) -> None:
    raw = text.encode()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # refused before the check (malformed, or a number beyond double)
    assert jsonnum.number_problem(raw, value) == slow_number_problem(raw, value), text


def test_the_fast_paths_keep_the_edge_cases() -> None:
    big = jsonnum.loads(b'{"a": 12345678901234567890, "b": 0.1, "c": [1e400]}')
    assert orjson.dumps(big) == b'{"a":12345678901234567890,"b":0.1,"c":[1e400]}'
    assert jsonnum.loads(b'{"n": 1, "t": "x"}') == {"n": 1, "t": "x"}
    assert jsonnum.dumps({"x": 2.0**60}) == '{"x":1152921504606846976.0}'
    assert jsonnum.dumps({"x": 1.5}) == '{"x":1.5}'
    raw = b'{"n": 9223372036854775808}'
    assert jsonnum.number_problem(raw, orjson.loads(raw)) is not None
    assert jsonnum.number_problem(b'{"n": 1}', {"n": 1}) is None
