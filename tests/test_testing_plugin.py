"""The picloud.testing plugin's own behaviour: its SQL assertion helpers fail when they
should, and picloud_server is a real process that can crash and come back."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from picloud.testing import (
    PgServer,
    PiCloudServer,
    assert_published,
    deliveries_for,
    make_app,
    messages_for,
    wait_for_delivery,
)
from tests.sources_util import add_trigger


def _publish(db: psycopg.Connection[Any], app_id: object, topic: str, message: str) -> None:
    db.execute("SELECT picloud.publish(%s, %s, %s::jsonb)", (app_id, topic, message))


def test_assert_published(picloud_db: psycopg.Connection[Any]) -> None:
    app_id = make_app(picloud_db, "shop")
    picloud_db.execute("INSERT INTO picloud.topics (app_id, name) VALUES (%s, 'news')", (app_id,))
    with pytest.raises(AssertionError, match="was not published"):
        assert_published(picloud_db, app_id, "news")
    _publish(picloud_db, app_id, "news", '{"a": 1}')
    _publish(picloud_db, app_id, "news", '{"a": 1}')
    _publish(picloud_db, app_id, "news", '"b"')
    assert len(assert_published(picloud_db, app_id, "news", {"a": 1})) == 2
    assert_published(picloud_db, str(app_id), "news", "b", count=1)
    assert_published(picloud_db, app_id, "news", "c", count=0)
    with pytest.raises(AssertionError, match="2 rows, expected 1"):
        assert_published(picloud_db, app_id, "news", {"a": 1}, count=1)
    with pytest.raises(AssertionError):
        assert_published(picloud_db, app_id, "news", {"a": 2})
    assert [r["seq"] for r in messages_for(picloud_db, app_id, "news")] == [1, 2, 3]
    other = make_app(picloud_db, "other")
    assert messages_for(picloud_db, other, "news") == []


def test_deliveries_for_and_wait_for_delivery(db: psycopg.Connection[Any]) -> None:
    app_id = make_app(db, "shop")
    add_trigger(db, app_id, "kv")
    db.execute("INSERT INTO picloud.kv (app_id, key, value) VALUES (%s, 'k', '1')", (app_id,))
    rows = deliveries_for(db, app_id, source="kv")
    assert [(r["subject"], r["status"]) for r in rows] == [("k", "pending")]
    assert deliveries_for(db, app_id, source="docs") == []
    assert deliveries_for(db, app_id, status="done") == []
    assert wait_for_delivery(db, app_id, status="pending", subject="k")["id"] == rows[0]["id"]
    # Nothing dispatches in this test: waiting for "done" fails and says what it saw.
    with pytest.raises(AssertionError, match=r"no delivery reached 'done'.*'k', 'pending'"):
        wait_for_delivery(db, app_id, timeout=0.2)


def test_picloud_server_is_a_process_that_can_crash_and_restart(
    picloud_server: PiCloudServer,
) -> None:
    def healthy() -> bool:
        with urllib.request.urlopen(picloud_server.url + "/healthz", timeout=5) as resp:
            return bool(resp.status == 200)

    assert picloud_server.running
    assert healthy()
    assert picloud_server.kill() == -9
    assert not picloud_server.running
    with pytest.raises(OSError):
        healthy()
    picloud_server.start()
    assert healthy()
    with pytest.raises(RuntimeError, match="already running"):
        picloud_server.start()


def test_registered_as_a_pytest_plugin() -> None:
    (entry,) = [
        e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "picloud.testing"
    ]
    module = entry.load()
    for name in ("picloud_db", "picloud_server", "picloud_app", "assert_published"):
        assert hasattr(module, name), name


def test_a_project_opts_in_with_one_conftest_line(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["picloud.testing"]\n')
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    # Autoloading off: the conftest line alone brings the plugin in.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("picloud_db", "picloud_database", "picloud_server", "picloud_app"):
        assert f"\n{name}" in done.stdout, name


def test_an_existing_server_from_picloud_test_database_url(
    tmp_path: Path, pg_server: PgServer
) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["picloud.testing"]\n')
    (tmp_path / "test_uses_it.py").write_text(
        "import os\n"
        "def test_uses_it(picloud_pg, picloud_db):\n"
        "    assert picloud_pg.conninfo == os.environ['PICLOUD_TEST_DATABASE_URL']\n"
        "    row = picloud_db.execute('SELECT count(*) AS n FROM picloud.apps').fetchone()\n"
        "    assert row['n'] == 0\n"
        "    name = picloud_db.execute('SELECT current_database() AS d').fetchone()['d']\n"
        "    print('DATABASE', name)\n"
    )
    env = {**os.environ, "PICLOUD_TEST_DATABASE_URL": pg_server.conninfo}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"DATABASE (\S+)", done.stdout)
    assert found, done.stdout
    name = found.group(1)
    # The clone lived on this session's server and was dropped afterwards.
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall()
    assert name.startswith("picloud_t_")
    assert left == []
