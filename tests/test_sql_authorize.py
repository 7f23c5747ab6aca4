"""picloud.authorize at SQL level: the key, the app and the capability, in that order."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors

from picloud.db import Row


def make_app(db: psycopg.Connection[Row], slug: str) -> uuid.UUID:
    row = db.execute(
        "INSERT INTO picloud.apps (slug, name) VALUES (%s, %s) RETURNING id", (slug, slug)
    ).fetchone()
    assert row is not None
    app_id: uuid.UUID = row["id"]
    return app_id


def make_key(db: psycopg.Connection[Row], app_id: uuid.UUID | None, *caps: str) -> str:
    row = db.execute(
        "SELECT key FROM picloud.create_api_key(%s, 'k', %s)", (app_id, list(caps))
    ).fetchone()
    assert row is not None
    key: str = row["key"]
    return key


def authorize(
    db: psycopg.Connection[Row], key: str | None, app_id: uuid.UUID | None, capability: str | None
) -> Row:
    row = db.execute(
        "SELECT * FROM picloud.authorize(%s, %s, %s)", (key, app_id, capability)
    ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def apps(db: psycopg.Connection[Row]) -> tuple[uuid.UUID, uuid.UUID]:
    return make_app(db, "auth-a"), make_app(db, "auth-b")


def test_a_capability_on_its_own_app(
    db: psycopg.Connection[Row], apps: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = apps
    key = make_key(db, a, "kv:read")
    row = authorize(db, key, a, "kv:read")
    assert (row["app"], row["slug"], row["instance_admin"]) == (a, "auth-a", False)
    with pytest.raises(errors.InsufficientPrivilege):
        authorize(db, key, a, "kv:write")


def test_app_admin_holds_its_app_only(
    db: psycopg.Connection[Row], apps: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = apps
    key = make_key(db, a, "app:admin")
    assert authorize(db, key, a, "dead_letters:manage")["app"] == a
    with pytest.raises(errors.InsufficientPrivilege):
        authorize(db, key, b, "kv:read")
    with pytest.raises(errors.InsufficientPrivilege):
        authorize(db, key, a, "instance:admin")
    with pytest.raises(errors.InsufficientPrivilege):
        authorize(db, key, None, "instance:admin")
    with pytest.raises(errors.InsufficientPrivilege):
        authorize(db, key, a, None)  # no capability named: nothing is granted


def test_instance_admin_holds_every_app(
    db: psycopg.Connection[Row], apps: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = apps
    key = make_key(db, None, "instance:admin")
    assert authorize(db, key, b, "kv:write")["instance_admin"] is True
    row = authorize(db, key, None, "instance:admin")
    assert (row["app"], row["slug"]) == (None, None)
    assert authorize(db, key, a, "topics:manage")["app"] == a


def test_refusals_in_order(db: psycopg.Connection[Row], apps: tuple[uuid.UUID, uuid.UUID]) -> None:
    a, _ = apps
    key = make_key(db, a, "kv:read")
    missing = uuid.uuid4()
    # No live key first (even for an unknown app), then the app, then the capability.
    for bad_key in (None, "", "pck_" + "0" * 64):
        with pytest.raises(errors.InvalidAuthorizationSpecification):
            authorize(db, bad_key, missing, "kv:read")
    with pytest.raises(errors.NoDataFound):
        authorize(db, key, missing, "kv:read")
    db.execute("UPDATE picloud.api_keys SET revoked_at = now() WHERE key_prefix = %s", (key[:8],))
    with pytest.raises(errors.InvalidAuthorizationSpecification):
        authorize(db, key, a, "kv:read")


def test_expired_key_is_refused(
    db: psycopg.Connection[Row], apps: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = apps
    key = make_key(db, a, "kv:read")
    db.execute(
        "UPDATE picloud.api_keys SET expires_at = now() - interval '1 s' WHERE key_prefix = %s",
        (key[:8],),
    )
    with pytest.raises(errors.InvalidAuthorizationSpecification):
        authorize(db, key, a, "kv:read")
