"""A sample app test suite: only the public fixtures of ``picloud.testing`` and the public
``picloud_client`` API, with assertions made in SQL against the app's database."""

from __future__ import annotations

from typing import Any

import psycopg
from picloud.testing import (
    PiCloudApp,
    PiCloudServer,
    assert_published,
    deliveries_for,
    wait_for_delivery,
)

from picloud_client import Message, PiCloud


def test_a_publish_in_a_rolled_back_transaction_is_never_delivered(
    picloud_app: PiCloudApp, picloud_db: psycopg.Connection[Any]
) -> None:
    app = picloud_app.client
    app.create_topic("orders", external_subscribable=True, auth_mode="public")
    app.publish("orders", "before")
    with (
        PiCloud(picloud_app.server.url) as browser,
        browser.subscribe(picloud_app.host, "orders", last_event_id=0) as stream,
    ):
        first = next(stream)  # the stream is open (and live) from here on
        # The app publishes from inside its own transaction, which then rolls back.
        with picloud_db.transaction(force_rollback=True):
            picloud_db.execute(
                "SELECT picloud.publish(%s, 'orders', '\"dropped\"'::jsonb)", (picloud_app.id,)
            )
        app.publish("orders", "kept")
        second = next(stream)

    assert isinstance(first, Message)
    assert isinstance(second, Message)
    # Positions are not handed back on rollback: "dropped" left a gap (position 2) that
    # the stream stepped over, never delivering it.
    assert [(m.id, m.message) for m in (first, second)] == [(1, "before"), (3, "kept")]
    assert_published(picloud_db, picloud_app, "orders", "dropped", count=0)
    assert_published(picloud_db, picloud_app, "orders", "kept", count=1)


def test_a_kv_write_creates_a_delivery_that_a_sql_handler_runs(
    picloud_app: PiCloudApp, picloud_server: PiCloudServer, picloud_db: psycopg.Connection[Any]
) -> None:
    picloud_db.execute("""
        CREATE SCHEMA IF NOT EXISTS picloud_handlers;
        CREATE TABLE picloud_handlers.greetings (key text, value jsonb);
        CREATE FUNCTION picloud_handlers.remember(event jsonb) RETURNS void
        LANGUAGE sql AS $$
            INSERT INTO picloud_handlers.greetings VALUES (event->>'key', event->'value')
        $$;
    """)
    # SQL handlers are registered by an instance admin; the app's own key does the rest.
    with PiCloud(picloud_server.url, api_key=picloud_server.admin_key) as admin:
        handler = admin.app(picloud_app.id).create_handler(
            "remember", "sql", function="picloud_handlers.remember"
        )
    app = picloud_app.client
    app.create_trigger("on-greeting", "kv", handler["id"], filter={"match": "greeting/*"})

    app.kv_set("greeting/en", {"text": "hello"})
    app.kv_set("other", 1)  # no trigger matches: no delivery

    pending = deliveries_for(picloud_db, picloud_app, source="kv")
    assert [d["subject"] for d in pending] == ["greeting/en"]
    done = wait_for_delivery(picloud_db, picloud_app, source="kv", status="done")
    assert done["event"]["key"] == "greeting/en"
    rows = picloud_db.execute("SELECT key, value FROM picloud_handlers.greetings").fetchall()
    assert rows == [{"key": "greeting/en", "value": {"text": "hello"}}]
