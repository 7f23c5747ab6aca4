"""SQL level: subscriber tokens and authorize_subscribe, every case of SPEC §5."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import uuid

import psycopg
import pytest
from psycopg import errors

from picloud.db import Row
from tests.fix_db import make_app
from tests.test_sql_topics import make_topic


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(key: bytes, version: int, exp: int, app: uuid.UUID, topic: str) -> str:
    """A token built in Python from the documented format (checks SQL against hmac)."""
    payload = f"{version}.{exp}.{app}.{topic}".encode()
    mac = hmac.new(key, b"picloud-subscriber." + payload, hashlib.sha256).digest()
    return f"{b64u(payload)}.{b64u(mac)}"


def mint(db: psycopg.Connection[Row], app: uuid.UUID, topic: str, ttl: str = "1 hour") -> str:
    row = db.execute(
        "SELECT picloud.subscriber_token(%s, %s, %s) AS t", (app, topic, ttl)
    ).fetchone()
    assert row is not None
    token: str = row["t"]
    return token


def authorize(db: psycopg.Connection[Row], app: uuid.UUID, topic: str, token: str | None) -> str:
    row = db.execute(
        "SELECT picloud.authorize_subscribe(%s, %s, %s) AS v", (app, topic, token)
    ).fetchone()
    assert row is not None
    verdict: str = row["v"]
    return verdict


def secret(db: psycopg.Connection[Row], app: uuid.UUID) -> tuple[bytes, int]:
    row = db.execute(
        "SELECT signing_key, key_version FROM picloud.app_secrets WHERE app_id = %s", (app,)
    ).fetchone()
    assert row is not None
    return bytes(row["signing_key"]), row["key_version"]


def test_token_cases(db: psycopg.Connection[Row]) -> None:
    app, other_app = make_app(db, "a"), make_app(db, "b")
    for a in (app, other_app):
        make_topic(db, a, "room")
        make_topic(db, a, "lobby")
    assert db.execute("SELECT count(*) AS n FROM picloud.app_secrets").fetchone() == {"n": 0}
    token = mint(db, app, "room")
    key, version = secret(db, app)
    assert (len(key), version) == (32, 1), "created lazily by the first mint"
    assert authorize(db, app, "room", token) == "allow"

    claims = db.execute("SELECT * FROM picloud.subscriber_token_claims(%s)", (token,)).fetchone()
    assert claims is not None and claims["app_id"] == app and claims["topic"] == "room"
    exp = int(claims["expires_at"].timestamp())
    assert abs(exp - (time.time() + 3600)) < 60
    assert token == forge(key, 1, exp, app, "room"), "the documented format, Python's hmac"

    payload, mac = token.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    tampered_payload = b64u(raw.replace(b"room", b"roon")) + "." + mac
    tampered_exp = b64u(raw.replace(str(exp).encode(), str(exp + 9999).encode())) + "." + mac
    flipped = mac[:10] + ("A" if mac[10] != "A" else "B") + mac[11:]
    cases = {
        "tampered payload": tampered_payload,
        "tampered expiry": tampered_exp,
        "tampered mac": f"{payload}.{flipped}",
        "truncated mac": f"{payload}.{mac[:-2]}",
        "other app": mint(db, other_app, "room"),
        "other topic": mint(db, app, "lobby"),
        "expired": forge(key, 1, int(time.time()) - 1, app, "room"),
        "unknown key version": forge(key, 2, exp, app, "room"),
        "wrong key": forge(b"k" * 32, 1, exp, app, "room"),
        "empty": "",
        "garbage": "not a token",
        "dots": "...",
        "bad base64": "@@@@." + mac,
        "not utf-8": b64u(b"\xff\xfe\xfd") + "." + mac,
        "huge": "A" * 5000 + "." + mac,
        "mac only": mac,
    }
    for name, bad in cases.items():
        assert authorize(db, app, "room", bad) == "unauthorized", name
    assert authorize(db, app, "room", None) == "unauthorized"
    # The other app's token works for its own app only.
    assert authorize(db, other_app, "room", cases["other app"]) == "allow"


def test_missing_and_internal_topics_collapse_to_not_found(db: psycopg.Connection[Row]) -> None:
    app = make_app(db)
    make_topic(db, app, "internal", external=False)
    make_topic(db, app, "open", auth_mode="public")
    internal_token = mint(db, app, "internal")
    assert authorize(db, app, "internal", internal_token) == "not_found"
    assert authorize(db, app, "internal", None) == "not_found"
    assert authorize(db, app, "missing", internal_token) == "not_found"
    assert authorize(db, uuid.uuid4(), "internal", internal_token) == "not_found"
    assert authorize(db, app, "open", None) == "allow"
    assert authorize(db, app, "open", "garbage") == "allow"
    with pytest.raises(errors.NoDataFound):
        mint(db, app, "missing")
    for bad_ttl in ("0 seconds", "-1 hour", "31 days"):
        with pytest.raises(errors.InvalidParameterValue):
            mint(db, app, "open", bad_ttl)


def test_rotation_keeps_previous_key_for_the_grace(db: psycopg.Connection[Row]) -> None:
    app = make_app(db)
    make_topic(db, app, "room")
    old = mint(db, app, "room")
    old_key, _ = secret(db, app)
    assert db.execute("SELECT picloud.rotate_app_secret(%s, '1 hour') AS v", (app,)).fetchone() == {
        "v": 2
    }
    new_key, version = secret(db, app)
    assert version == 2 and new_key != old_key
    new = mint(db, app, "room")
    assert authorize(db, app, "room", old) == "allow", "previous key inside the grace"
    assert authorize(db, app, "room", new) == "allow"
    # The grace ends.
    db.execute(
        "UPDATE picloud.app_secrets SET previous_valid_until = now() - interval '1 second'"
        " WHERE app_id = %s",
        (app,),
    )
    assert authorize(db, app, "room", old) == "unauthorized", "previous key after the grace"
    assert authorize(db, app, "room", new) == "allow"
    # A second rotation retires version 2's predecessor for good, whatever the grace.
    db.execute("SELECT picloud.rotate_app_secret(%s, '1 day')", (app,))
    assert authorize(db, app, "room", new) == "allow"
    assert authorize(db, app, "room", old) == "unauthorized"
    # Rotating an app that never minted creates its key; bad input is refused.
    fresh = make_app(db, "fresh")
    assert db.execute("SELECT picloud.rotate_app_secret(%s) AS v", (fresh,)).fetchone() == {"v": 2}
    with pytest.raises(errors.NoDataFound):
        db.execute("SELECT picloud.rotate_app_secret(%s)", (uuid.uuid4(),))
    with pytest.raises(errors.InvalidParameterValue):
        db.execute("SELECT picloud.rotate_app_secret(%s, '-1 hour')", (app,))


def wait_for_lock_waiter(db: psycopg.Connection[Row], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = db.execute(
            "SELECT count(*) AS n FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
        if row and row["n"]:
            return
        time.sleep(0.01)
    raise AssertionError("no backend started waiting for a lock")


def test_first_mints_race_to_one_key(database: str, db: psycopg.Connection[Row]) -> None:
    app = make_app(db)
    make_topic(db, app, "room")
    first = psycopg.connect(database)
    first.execute("SELECT picloud.subscriber_token(%s, 'room')", (app,))  # uncommitted key
    tokens: list[str] = []

    def second() -> None:
        with psycopg.connect(database, autocommit=True) as conn:
            row = conn.execute("SELECT picloud.subscriber_token(%s, 'room')", (app,)).fetchone()
            assert row is not None
            tokens.append(row[0])

    thread = threading.Thread(target=second)
    thread.start()
    wait_for_lock_waiter(db)  # the second mint blocks on the uncommitted key row
    first.commit()
    first.close()
    thread.join(10)
    assert len(tokens) == 1
    assert authorize(db, app, "room", tokens[0]) == "allow"
    assert db.execute("SELECT count(*) AS n FROM picloud.app_secrets").fetchone() == {"n": 1}
