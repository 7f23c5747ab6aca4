"""The NOTIFY channels: named once, in sql/28_channels.sql; listeners ask picloud.listen."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from picloud.db import Row

ROOT = Path(__file__).parent.parent
CHANNELS = ("realtime_channel", "realtime_control_channel", "dispatch_channel")


def names(db: psycopg.Connection[Row]) -> list[str]:
    rows = [db.execute(f"SELECT picloud.{fn}() AS name").fetchone() for fn in CHANNELS]
    return [str(row["name"]) for row in rows if row is not None]


def test_listen_subscribes_to_each_channel_and_names_it(
    database: str, db: psycopg.Connection[Row]
) -> None:
    with psycopg.connect(database, autocommit=True) as listener:
        for name in names(db):
            row = listener.execute("SELECT picloud.listen(%s)", (name,)).fetchone()
            assert row == (name,)
            db.execute("SELECT pg_notify(%s, 'hello')", (name,))
            [note] = list(listener.notifies(timeout=5, stop_after=1))
            assert (note.channel, note.payload) == (name, "hello")


@pytest.mark.parametrize("channel", [None, "", "picloud_other", "pg_catalog", "a b"])
def test_listen_refuses_any_other_channel(db: psycopg.Connection[Row], channel: str | None) -> None:
    with pytest.raises(errors.InvalidParameterValue, match="no PiCloud channel"):
        db.execute("SELECT picloud.listen(%s)", (channel,))


def test_no_other_source_file_spells_a_channel_name(db: psycopg.Connection[Row]) -> None:
    spelled = re.compile("|".join(rf"\b{re.escape(name)}\b" for name in names(db)))
    sources = [*(ROOT / "sql").glob("*.sql"), *(ROOT / "src" / "picloud").rglob("*.py")]
    sources += (ROOT / "src" / "picloud" / "queries").glob("*.sql")
    found = sorted(
        str(path.relative_to(ROOT))
        for path in sources
        if spelled.search(path.read_text(encoding="utf-8"))
    )
    assert found == ["sql/28_channels.sql"]
