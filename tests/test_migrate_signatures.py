"""Old function signatures are dropped by a migration (V0013), not by the sql/ files."""

from __future__ import annotations

from pathlib import Path

import psycopg

from picloud.migrate import migrate
from picloud.schema_snapshot import schema_snapshot

ROOT = Path(__file__).parent.parent

# What the sql/ files of earlier releases left in a database: signatures since retired.
RETIRED = """
CREATE FUNCTION picloud.claim_deliveries(worker text, max integer, lease interval)
RETURNS SETOF bigint LANGUAGE sql AS 'SELECT 1::bigint';
CREATE FUNCTION picloud.claim_and_run_deliveries(text, integer, interval, integer, integer)
RETURNS SETOF bigint LANGUAGE sql AS 'SELECT 1::bigint';
CREATE FUNCTION picloud.check_claim(text, integer, interval) RETURNS void
LANGUAGE sql AS 'SELECT';
CREATE FUNCTION picloud.lock_due_deliveries(integer) RETURNS void LANGUAGE sql AS 'SELECT';
CREATE FUNCTION picloud.run_sql_handler(text, jsonb) RETURNS void LANGUAGE sql AS 'SELECT';
CREATE FUNCTION picloud.complete_delivery_or_raise(bigint, text) RETURNS void
LANGUAGE sql AS 'SELECT';
CREATE FUNCTION picloud.complete_deliveries(uuid[], bigint[], text[]) RETURNS void
LANGUAGE sql AS 'SELECT';
CREATE FUNCTION picloud.finish_deliveries(bigint[], text[], text[]) RETURNS void
LANGUAGE sql AS 'SELECT';
CREATE FUNCTION picloud.run_sql_deliveries(bigint[], text) RETURNS void
LANGUAGE sql AS 'SELECT';
CREATE FUNCTION picloud.messages_fan_out() RETURNS trigger
LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
CREATE TRIGGER messages_fan_out AFTER INSERT ON picloud.messages
    FOR EACH ROW EXECUTE FUNCTION picloud.messages_fan_out();
"""


def test_a_database_with_retired_signatures_migrates_to_the_snapshot(
    empty_database: str,
) -> None:
    migrate(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(RETIRED)
        # As it was before V0013: the migrations from there on run again.
        conn.execute("DELETE FROM public.schema_version WHERE version >= 13")
    result = migrate(empty_database)
    assert result.applied[0] == 13
    with psycopg.connect(empty_database) as conn:
        current = schema_snapshot(conn)
    assert current == (ROOT / "tests" / "schema_snapshot.txt").read_text()


def test_the_sql_files_drop_no_function() -> None:
    """sql/ is re-applied on every migrate; retiring a signature is a migration's job."""
    dropping = sorted(
        path.name
        for path in (ROOT / "sql").glob("*.sql")
        if "DROP FUNCTION" in path.read_text(encoding="utf-8").upper()
    )
    assert dropping == []


def test_v0017_drops_the_create_topic_without_presence(empty_database: str) -> None:
    """A database as V0016 left it (create_topic without presence, subjects up to 256
    characters) migrates to the snapshot: one create_topic, the subject rule in one place."""
    migrate(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION picloud.create_topic(app_id uuid, name text,"
            " external_subscribable boolean DEFAULT false, auth_mode text DEFAULT 'token')"
            " RETURNS SETOF picloud.topics LANGUAGE sql AS 'SELECT * FROM picloud.topics'"
        )
        conn.execute(
            "ALTER TABLE picloud.presence_connections"
            " DROP CONSTRAINT presence_connections_subject_valid,"
            " ADD CONSTRAINT presence_connections_subject_length"
            " CHECK (length(subject) BETWEEN 1 AND 256)"
        )
        conn.execute("DELETE FROM public.schema_version WHERE version >= 17")
    assert migrate(empty_database).applied == [17]
    with psycopg.connect(empty_database) as conn:
        current = schema_snapshot(conn)
        forms = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = 'create_topic'"
            " AND pronamespace = 'picloud'::regnamespace"
        ).fetchone()
    assert forms == (1,)
    assert current == (ROOT / "tests" / "schema_snapshot.txt").read_text()
