"""HMAC-SHA256 and random keys in plain SQL agree with Python's hmac."""

from __future__ import annotations

import hashlib
import hmac

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from picloud.db import Row

# RFC 4231 test cases 1-7 (case 5's truncated output is checked on its first 16 bytes).
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        b"\xaa" * 20,
        b"\xdd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        bytes(range(1, 26)),
        b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (b"\x0c" * 20, b"Test With Truncation", "a3b6167473100ee06e0c796c2955552b"),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size data."
        b" The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


def sql_hmac(db: psycopg.Connection[Row], key: bytes, message: bytes) -> bytes:
    row = db.execute("SELECT picloud.hmac_sha256(%s, %s) AS mac", (key, message)).fetchone()
    assert row is not None
    mac: bytes = row["mac"]
    return mac


def test_rfc4231_vectors(db: psycopg.Connection[Row]) -> None:
    for key, message, expected in RFC4231:
        mac = sql_hmac(db, key, message)
        assert mac.hex().startswith(expected)
        assert mac == hmac.new(key, message, hashlib.sha256).digest()


@settings(
    max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.binary(min_size=0, max_size=200), message=st.binary(min_size=0, max_size=600))
def test_random_inputs_match_python(
    db: psycopg.Connection[Row], key: bytes, message: bytes
) -> None:
    assert sql_hmac(db, key, message) == hmac.new(key, message, hashlib.sha256).digest()


def test_random_bytes_are_32_and_distinct(db: psycopg.Connection[Row]) -> None:
    rows = db.execute(
        "SELECT picloud.random_bytes_32() AS b FROM generate_series(1, 500)"
    ).fetchall()
    values = [r["b"] for r in rows]
    assert all(len(v) == 32 for v in values)
    assert len(set(values)) == 500


def test_digests_equal(db: psycopg.Connection[Row]) -> None:
    row = db.execute(
        "SELECT picloud.digests_equal('\\x01'::bytea, '\\x01'::bytea) AS same,"
        " picloud.digests_equal('\\x01'::bytea, '\\x02'::bytea) AS differ,"
        " picloud.digests_equal(NULL, '\\x02'::bytea) AS null_side"
    ).fetchone()
    assert row == {"same": True, "differ": False, "null_side": False}
