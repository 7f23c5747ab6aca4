"""Keys: a weak PICLOUD_ADMIN_KEY stops start-up; at most 8 characters of a key in clear."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from picloud.db import Row
from picloud.settings import SettingsError, load_settings
from tests.fix_db import make_app


@pytest.mark.parametrize("key", ["hunter2", "x" * 31, " " + "y" * 31 + " "])
def test_short_admin_key_is_refused_without_echoing_it(key: str) -> None:
    with pytest.raises(SettingsError, match="PICLOUD_ADMIN_KEY") as caught:
        load_settings({"PICLOUD_ADMIN_KEY": key})
    assert key.strip() not in str(caught.value)


def test_long_admin_key_is_taken() -> None:
    assert load_settings({"PICLOUD_ADMIN_KEY": "k" * 32}).admin_key == "k" * 32


def test_weak_admin_key_stops_serve(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "picloud", "serve"],
        env={"PICLOUD_ADMIN_KEY": "hunter2", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "PICLOUD_ADMIN_KEY" in proc.stderr and "32" in proc.stderr
    assert "hunter2" not in proc.stderr and "Traceback" not in proc.stderr


def test_no_more_than_eight_characters_in_clear(db: psycopg.Connection[Row]) -> None:
    admin = "adminkey_" + "z" * 40
    db.execute("SELECT picloud.ensure_admin_key(%s)", (admin,))
    app = make_app(db)
    made = db.execute(
        "SELECT * FROM picloud.create_api_key(%s, 'k', ARRAY['kv:read'])", (app,)
    ).fetchone()
    assert made is not None
    rows = db.execute("SELECT key_prefix FROM picloud.api_keys").fetchall()
    assert {r["key_prefix"] for r in rows} == {admin[:8], made["key"][:8]}
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE picloud.api_keys SET key_prefix = 'pck_0123456789'")
