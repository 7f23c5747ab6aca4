"""SQL level: subscriber tokens for several topics (one multiplexed stream)."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

import psycopg
import pytest
from psycopg import errors

from picloud.db import Row
from tests.fix_db import make_app
from tests.test_sql_topics import make_topic
from tests.test_sql_topics_tokens import authorize, b64u, mint, secret


def mint_many(
    db: psycopg.Connection[Row], app: uuid.UUID, topics: list[str], subject: str | None = None
) -> str:
    row = db.execute(
        "SELECT picloud.subscriber_token(%s, %s::text[], '1 hour', %s) AS t",
        (app, topics, subject),
    ).fetchone()
    assert row is not None
    token: str = row["t"]
    return token


def test_a_token_for_several_topics_opens_each_and_no_other(db: psycopg.Connection[Row]) -> None:
    app, other = make_app(db, "a"), make_app(db, "b")
    for name in ("x", "y", "z"):
        make_topic(db, app, name)
    make_topic(db, other, "x")
    token = mint_many(db, app, ["x", "y"], "user-1")
    assert [authorize(db, app, t, token) for t in ("x", "y", "z")] == [
        "allow",
        "allow",
        "unauthorized",
    ]
    assert authorize(db, other, "x", token) == "unauthorized"
    claims = db.execute("SELECT * FROM picloud.subscriber_token_claims(%s)", (token,)).fetchone()
    assert claims is not None
    assert (claims["topics"], claims["topic"], claims["subject"], claims["can_publish"]) == (
        ["x", "y"],
        None,
        "user-1",
        False,
    )
    # It grants no publish on any of them.
    row = db.execute(
        "SELECT count(*) AS n FROM picloud.verified_token_claims(%s, 'x', %s) WHERE can_publish",
        (app, token),
    ).fetchone()
    assert row is not None and row["n"] == 0


def test_single_topic_tokens_keep_their_format(db: psycopg.Connection[Row]) -> None:
    app = make_app(db, "a")
    make_topic(db, app, "x")
    single = mint(db, app, "x")
    one_of_many = mint_many(db, app, ["x"])
    key, version = secret(db, app)
    # A token built from the documented single-topic format (as minted before) stays valid.
    payload = f"{version}.{int(time.time()) + 600}.{app}.x".encode()
    mac = hmac.new(key, b"picloud-subscriber." + payload, hashlib.sha256).digest()
    old = f"{b64u(payload)}.{b64u(mac)}"
    for token in (single, one_of_many, old):
        assert authorize(db, app, "x", token) == "allow"
        claims = db.execute(
            "SELECT topic, topics FROM picloud.subscriber_token_claims(%s)", (token,)
        ).fetchone()
        assert claims is not None and (claims["topic"], claims["topics"]) == ("x", ["x"])


@pytest.mark.parametrize(
    ("topics", "subject", "ttl", "sqlstate"),
    [
        ([], None, "1 hour", errors.InvalidParameterValue),
        (None, None, "1 hour", errors.InvalidParameterValue),
        (["x", None], None, "1 hour", errors.InvalidParameterValue),
        (["x", "x"], None, "1 hour", errors.InvalidParameterValue),
        (["x", "ghost"], None, "1 hour", errors.NoDataFound),
        (["x"], "", "1 hour", errors.InvalidParameterValue),
        (["x"], "a\tb", "1 hour", errors.InvalidParameterValue),
        (["x"], "s" * 129, "1 hour", errors.InvalidParameterValue),
        (["x"], None, "0 seconds", errors.InvalidParameterValue),
        (["x"], None, "31 days", errors.InvalidParameterValue),
        (["x"], None, None, errors.InvalidParameterValue),
    ],
)
def test_bad_input_is_a_clear_sqlstate(
    db: psycopg.Connection[Row],
    topics: list[str | None] | None,
    subject: str | None,
    ttl: str | None,
    sqlstate: type[Exception],
) -> None:
    app = make_app(db, "a")
    make_topic(db, app, "x")
    with pytest.raises(sqlstate):
        db.execute(
            "SELECT picloud.subscriber_token(%s, %s::text[], %s::interval, %s)",
            (app, topics, ttl, subject),
        )


def test_too_long_a_token_is_refused(db: psycopg.Connection[Row]) -> None:
    app = make_app(db, "a")
    names = [f"{i:03d}" + "t" * 120 for i in range(40)]
    for name in names:
        make_topic(db, app, name)
    with pytest.raises(errors.InvalidParameterValue, match="4096"):
        mint_many(db, app, names)
    assert authorize(db, app, names[0], mint_many(db, app, names[:20])) == "allow"


def signed(key: bytes, version: int, app: uuid.UUID, topic: str, subject: str) -> str:
    """A validly signed token naming ``subject`` (built from the documented format)."""
    payload = f"{version}.{int(time.time()) + 600}.{app}.{topic} - {subject}".encode()
    mac = hmac.new(key, b"picloud-subscriber." + payload, hashlib.sha256).digest()
    return f"{b64u(payload)}.{b64u(mac)}"


def test_a_subject_is_at_most_128_characters(db: psycopg.Connection[Row]) -> None:
    app = make_app(db, "a")
    make_topic(db, app, "x")
    for subject in ("s" * 128, "é" * 128, "a b"):
        assert mint_many(db, app, ["x"], subject)
        row = db.execute(
            "SELECT picloud.subscriber_token(%s, 'x', '1 hour', false, %s) AS t", (app, subject)
        ).fetchone()
        assert row is not None and row["t"]
    for subject in ("s" * 129, "é" * 129):
        with pytest.raises(errors.InvalidParameterValue, match="1-128 characters"):
            mint_many(db, app, ["x"], subject)
        with pytest.raises(errors.InvalidParameterValue, match="1-128 characters"):
            db.execute(
                "SELECT picloud.subscriber_token(%s, 'x', '1 hour', true, %s)", (app, subject)
            )
    valid = "SELECT picloud.token_subject_valid(%s) AS ok"
    verdicts = [
        db.execute(valid, (s,)).fetchone() for s in ("s" * 128, "s" * 129, "", "a\x1eb", None)
    ]
    assert [v and v["ok"] for v in verdicts] == [True, False, False, False, False]
    # A token is read by the same rule: a longer subject, even signed, is not a token.
    key, version = secret(db, app)
    ok, long = signed(key, version, app, "x", "s" * 128), signed(key, version, app, "x", "s" * 129)
    assert authorize(db, app, "x", ok) == "allow"
    assert authorize(db, app, "x", long) == "unauthorized"
    claims = "SELECT subject FROM picloud.subscriber_token_claims(%s)"
    assert db.execute(claims, (ok,)).fetchone() == {"subject": "s" * 128}
    assert db.execute(claims, (long,)).fetchone() is None
    # So is a presence row written by plain DML.
    db.execute("SELECT picloud.presence_heartbeat('n1', '30 seconds')")
    insert = (
        "INSERT INTO picloud.presence_connections (node_id, conn_id, app_id, topic, subject)"
        " VALUES ('n1', %s, %s, 'x', %s)"
    )
    db.execute(insert, (1, app, "s" * 128))
    with pytest.raises(errors.CheckViolation):
        db.execute(insert, (2, app, "s" * 129))
