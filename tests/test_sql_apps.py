"""Host resolution and API keys at SQL level."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from picloud.db import Row


@pytest.fixture
def app_id(db: psycopg.Connection[Row]) -> str:
    row = db.execute(
        "INSERT INTO picloud.apps (slug, name) VALUES ('myapp', 'My App') RETURNING id"
    ).fetchone()
    assert row is not None
    db.execute(
        "INSERT INTO picloud.app_domains (app_id, host) VALUES (%s, 'myapp.example.com')",
        (row["id"],),
    )
    return str(row["id"])


def resolve(db: psycopg.Connection[Row], host: str | None) -> str | None:
    row = db.execute("SELECT picloud.resolve_app(%s) AS id", (host,)).fetchone()
    assert row is not None
    return None if row["id"] is None else str(row["id"])


def test_exact_domain_ignores_case_and_port(db: psycopg.Connection[Row], app_id: str) -> None:
    assert resolve(db, "MyApp.Example.com:8443") == app_id
    assert resolve(db, "myapp.example.com") == app_id
    assert resolve(db, "myapp.example.com.") == app_id


def test_slug_under_base_domain(db: psycopg.Connection[Row], app_id: str) -> None:
    assert resolve(db, "myapp.localhost:8080") == app_id
    assert resolve(db, "MYAPP.LOCALHOST") == app_id
    db.execute("SET picloud.base_domain = 'apps.test'")
    assert resolve(db, "myapp.apps.test") == app_id
    assert resolve(db, "myapp.localhost") is None


def test_unknown_hosts(db: psycopg.Connection[Row], app_id: str) -> None:
    for host in ["other.example.com", "localhost", "", None, "x.myapp.localhost", "myapp"]:
        assert resolve(db, host) is None, host


def test_api_key_shown_once_and_hashed(db: psycopg.Connection[Row], app_id: str) -> None:
    created = db.execute(
        "SELECT * FROM picloud.create_api_key(%s, 'k', ARRAY['kv:read'])", (app_id,)
    ).fetchone()
    assert created is not None
    key = created["key"]
    stored = db.execute("SELECT * FROM picloud.api_keys WHERE id = %s", (created["id"],)).fetchone()
    assert stored is not None
    assert key.encode() not in bytes(stored["key_hash"])
    assert key not in str(stored)
    auth = db.execute("SELECT * FROM picloud.authenticate_key(%s)", (key,)).fetchone()
    assert auth is not None and auth["capabilities"] == ["kv:read"]
    db.execute("UPDATE picloud.api_keys SET revoked_at = now() WHERE id = %s", (created["id"],))
    assert db.execute("SELECT * FROM picloud.authenticate_key(%s)", (key,)).fetchone() is None


def test_expired_key_is_refused(db: psycopg.Connection[Row], app_id: str) -> None:
    created = db.execute(
        "SELECT * FROM picloud.create_api_key(%s, 'k', ARRAY['kv:read'], now() - interval '1s')",
        (app_id,),
    ).fetchone()
    assert created is not None
    assert (
        db.execute("SELECT * FROM picloud.authenticate_key(%s)", (created["key"],)).fetchone()
        is None
    )


@pytest.mark.parametrize(
    ("app", "caps", "message"),
    [
        (True, ["kv:read", "bogus"], "unknown capabilities: bogus"),
        (True, [], "non-empty"),
        (True, ["instance:admin"], "cannot be bound"),
        (False, ["kv:read"], "exactly instance:admin"),
    ],
)
def test_bad_capabilities(
    db: psycopg.Connection[Row], app_id: str, app: bool, caps: list[str], message: str
) -> None:
    with pytest.raises(errors.InvalidParameterValue, match=message):
        db.execute(
            "SELECT * FROM picloud.create_api_key(%s, 'k', %s)", (app_id if app else None, caps)
        )
