"""The picloud.* functions the admin routes and the command line write through, at SQL
level: apps, domains, keys, topics, tokens and signing keys."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors

from picloud.db import Row


def one(db: psycopg.Connection[Row], sql: str, *params: Any) -> Row | None:
    return db.execute(sql, params).fetchone()


def make_app(db: psycopg.Connection[Row], slug: str) -> uuid.UUID:
    row = one(db, "SELECT id FROM picloud.create_app(%s, %s)", slug, slug.upper())
    assert row is not None
    app_id: uuid.UUID = row["id"]
    return app_id


def key_of(db: psycopg.Connection[Row], app_id: uuid.UUID, *caps: str) -> uuid.UUID:
    row = one(db, "SELECT id FROM picloud.create_api_key(%s, 'k', %s)", app_id, list(caps))
    assert row is not None
    key_id: uuid.UUID = row["id"]
    return key_id


def test_apps_create_update_delete(db: psycopg.Connection[Row]) -> None:
    app = make_app(db, "fn-app")
    with pytest.raises(errors.UniqueViolation):
        make_app(db, "fn-app")
    with pytest.raises(errors.CheckViolation):
        make_app(db, "Bad Slug")
    row = one(db, "SELECT slug, name FROM picloud.update_app(%s, NULL, 'Renamed')", app)
    assert row == {"slug": "fn-app", "name": "Renamed"}
    row = one(db, "SELECT slug, name FROM picloud.update_app(%s, 'fn-app-2', NULL)", app)
    assert row == {"slug": "fn-app-2", "name": "Renamed"}
    assert one(db, "SELECT * FROM picloud.update_app(%s, 'x', 'y')", uuid.uuid4()) is None
    with pytest.raises(errors.CheckViolation):
        one(db, "SELECT * FROM picloud.update_app(%s, '-bad', NULL)", app)
    assert one(db, "SELECT picloud.delete_app(%s) AS id", app) == {"id": app}
    assert one(db, "SELECT * FROM picloud.delete_app(%s)", app) is None


def test_remove_domain_normalises_and_is_per_app(db: psycopg.Connection[Row]) -> None:
    app, other = make_app(db, "fn-dom"), make_app(db, "fn-dom-other")
    db.execute("SELECT picloud.add_domain(%s, 'shop.example.com')", (app,))
    assert one(db, "SELECT * FROM picloud.remove_domain(%s, 'shop.example.com')", other) is None
    row = one(db, "SELECT picloud.remove_domain(%s, 'SHOP.example.com.:443') AS h", app)
    assert row == {"h": "shop.example.com"}
    assert one(db, "SELECT * FROM picloud.remove_domain(%s, 'shop.example.com')", app) is None


def test_revoke_api_key_is_idempotent_and_per_app(db: psycopg.Connection[Row]) -> None:
    app, other = make_app(db, "fn-key"), make_app(db, "fn-key-other")
    key = key_of(db, app, "kv:read")
    assert one(db, "SELECT * FROM picloud.revoke_api_key(%s, %s)", other, key) is None
    first = one(db, "SELECT revoked_at FROM picloud.revoke_api_key(%s, %s)", app, key)
    assert first is not None and first["revoked_at"] is not None
    again = one(db, "SELECT revoked_at FROM picloud.revoke_api_key(%s, %s)", app, key)
    assert again == first


def test_capabilities_allow_is_the_capability_rule(db: psycopg.Connection[Row]) -> None:
    app, other = uuid.uuid4(), uuid.uuid4()
    cases = [
        (["instance:admin"], None, other, "kv:read", True),
        (["instance:admin"], None, None, "instance:admin", True),
        (["app:admin"], app, app, "kv:write", True),
        (["app:admin"], app, other, "kv:read", False),
        (["app:admin"], app, app, "instance:admin", False),
        (["kv:read"], app, app, "kv:read", True),
        (["kv:read"], app, app, "kv:write", False),
        (["kv:read"], app, None, "kv:read", False),
    ]
    for caps, key_app, app_id, capability, allowed in cases:
        row = one(
            db, "SELECT picloud.capabilities_allow(%s, %s, %s, %s) AS ok",
            caps, key_app, app_id, capability,
        )  # fmt: skip
        assert row == {"ok": allowed}, (caps, key_app, app_id, capability)
    real = make_app(db, "fn-caps")
    key = key_of(db, real, "tokens:mint")
    assert one(db, "SELECT picloud.key_allows(%s, %s, 'tokens:mint') AS ok", key, real) == {
        "ok": True
    }
    assert one(db, "SELECT picloud.key_allows(%s, %s, 'topics:publish') AS ok", key, real) == {
        "ok": False
    }
    assert one(db, "SELECT picloud.key_allows(%s, %s, 'kv:read') AS ok", uuid.uuid4(), real) == {
        "ok": False
    }


def test_topic_functions_check_the_name_and_auth_mode(db: psycopg.Connection[Row]) -> None:
    app = make_app(db, "fn-topics")
    db.execute("SELECT picloud.create_topic(%s, 't')", (app,))
    assert one(db, "SELECT name FROM picloud.topic(%s, 't')", app) == {"name": "t"}
    assert one(db, "SELECT * FROM picloud.topic(%s, 'ghost')", app) is None
    for fn in ("topic", "delete_topic"):
        with pytest.raises(errors.InvalidParameterValue, match="invalid topic name"):
            one(db, f"SELECT * FROM picloud.{fn}(%s, 'bad*name')", app)
    with pytest.raises(errors.InvalidParameterValue, match="invalid topic name"):
        one(db, "SELECT * FROM picloud.update_topic(%s, 'bad*name', true, NULL)", app)
    with pytest.raises(errors.InvalidParameterValue, match="auth_mode"):
        one(db, "SELECT * FROM picloud.update_topic(%s, 't', NULL, 'secret')", app)
    row = one(
        db,
        "SELECT external_subscribable, auth_mode FROM picloud.update_topic(%s, 't', true, NULL)",
        app,
    )
    assert row == {"external_subscribable": True, "auth_mode": "token"}
    row = one(
        db,
        "SELECT external_subscribable, auth_mode"
        "  FROM picloud.update_topic(%s, 't', NULL, 'public')",
        app,
    )
    assert row == {"external_subscribable": True, "auth_mode": "public"}
    assert one(db, "SELECT * FROM picloud.update_topic(%s, 'ghost', true, NULL)", app) is None
    assert one(db, "SELECT picloud.delete_topic(%s, 't') AS name", app) == {"name": "t"}
    assert one(db, "SELECT * FROM picloud.delete_topic(%s, 't')", app) is None


def test_topic_name_rule_is_one_function(db: psycopg.Connection[Row]) -> None:
    """The tables' CHECKs call picloud.topic_name_valid, the rule check_topic_name uses."""
    rows = db.execute(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE conname IN ('topics_name_format', 'handlers_topic_format') ORDER BY conname"
    ).fetchall()
    assert [r["conname"] for r in rows] == ["handlers_topic_format", "topics_name_format"]
    assert all("topic_name_valid" in r["def"] and "~" not in r["def"] for r in rows), rows


def test_mint_functions(db: psycopg.Connection[Row]) -> None:
    app = make_app(db, "fn-mint")
    db.execute("SELECT picloud.create_topic(%s, 'a')", (app,))
    db.execute("SELECT picloud.create_topic(%s, 'b')", (app,))
    minter = key_of(db, app, "tokens:mint")
    both = key_of(db, app, "tokens:mint", "topics:publish")
    row = one(
        db, "SELECT * FROM picloud.mint_topic_token(%s, %s, 'a', NULL, NULL, NULL)", minter, app
    )
    assert row is not None and row["token"] and row["expires_at"] is not None
    claims = one(db, "SELECT * FROM picloud.subscriber_token_claims(%s)", row["token"])
    assert claims is not None
    with pytest.raises(errors.InsufficientPrivilege, match="topics:publish"):
        one(db, "SELECT * FROM picloud.mint_topic_token(%s, %s, 'a', 60, true, NULL)", minter, app)
    assert one(db, "SELECT * FROM picloud.mint_topic_token(%s, %s, 'a', 60, true, 'u')", both, app)
    with pytest.raises(errors.InvalidParameterValue, match="invalid topic name"):
        one(db, "SELECT * FROM picloud.mint_topic_token(%s, %s, 'a*', 60, NULL, NULL)", both, app)
    with pytest.raises(errors.NoDataFound):
        one(db, "SELECT * FROM picloud.mint_topic_token(%s, %s, 'zz', 60, NULL, NULL)", both, app)
    for ttl in (0, -1, 31 * 86400):
        with pytest.raises(errors.InvalidParameterValue):
            one(db, "SELECT * FROM picloud.mint_topic_token(%s, %s, 'a', %s, NULL, NULL)",
                both, app, ttl)  # fmt: skip
    row = one(db, "SELECT * FROM picloud.mint_stream_token(%s, %s, NULL, NULL)", app, ["a", "b"])
    assert row is not None and row["token"]
    for topics in ([], ["a", "a"], ["a", "bad*"]):
        with pytest.raises(errors.InvalidParameterValue):
            one(db, "SELECT * FROM picloud.mint_stream_token(%s, %s, 60, NULL)", app, topics)
    with pytest.raises(errors.NoDataFound):
        one(db, "SELECT * FROM picloud.mint_stream_token(%s, %s, 60, NULL)", app, ["a", "zz"])


def test_rotate_signing_key_bounds_the_grace(db: psycopg.Connection[Row]) -> None:
    app = make_app(db, "fn-rotate")
    row = one(db, "SELECT * FROM picloud.rotate_signing_key(%s, NULL)", app)
    assert row is not None and row["key_version"] == 2  # created, then rotated
    assert row["previous_valid_until"] > row["rotated_at"]
    row = one(db, "SELECT * FROM picloud.rotate_signing_key(%s, 0)", app)
    assert row is not None and row["previous_valid_until"] == row["rotated_at"]
    for grace in (-1, 30 * 86400 + 1):
        with pytest.raises(errors.InvalidParameterValue):
            one(db, "SELECT * FROM picloud.rotate_signing_key(%s, %s)", app, grace)
    with pytest.raises(errors.NoDataFound):
        one(db, "SELECT * FROM picloud.rotate_signing_key(%s, 60)", uuid.uuid4())
