"""Start-up against a database that can't be used: ``picloud serve``, ``picloud dispatcher``
and an admin command each stop with exit code 2 and ONE line naming DATABASE_URL (password
masked) and the server's reason, within PICLOUD_DB_CONNECT_TIMEOUT_SEC; 0 waits for ever."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from picloud.embedded import embedded_postgres
from picloud.startup import mask_url
from tests.fix_server import free_port
from tests.procs import picloud_env

COMMANDS = (["serve"], ["dispatcher"], ["apps", "list"], ["migrate"])


@pytest.fixture(scope="module")
def secured_socket() -> Iterator[str]:
    """The socket directory of a PostgreSQL of its own where role `secured` needs a password."""
    root = Path(tempfile.mkdtemp(prefix="picloud-auth-", dir="/dev/shm"))
    with embedded_postgres(root, cleanup_mode="delete") as uri:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("CREATE ROLE secured LOGIN PASSWORD 'right-password'")
            hba = Path(conn.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
            hba.write_text("local all secured scram-sha-256\n" + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
        yield str(root / "pg")


def run(args: list[str], url: str, timeout_sec: str | None = "1") -> tuple[int, str, str, float]:
    env = picloud_env(DATABASE_URL=url, PICLOUD_LISTEN=f"127.0.0.1:{free_port()}")
    if timeout_sec is not None:
        env["PICLOUD_DB_CONNECT_TIMEOUT_SEC"] = timeout_sec
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "picloud", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def assert_one_line(stderr: str, expected: str) -> None:
    assert "Traceback" not in stderr
    assert stderr.splitlines() == [expected], stderr


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_nothing_listening(command: list[str]) -> None:
    port = free_port()
    url = f"postgresql://app:s3cret@127.0.0.1:{port}/app"
    code, out, err, _ = run(command, url)
    assert code == 2
    assert_one_line(
        err,
        f"picloud: cannot connect to DATABASE_URL=postgresql://app:***@127.0.0.1:{port}/app "
        "within 1 s: Connection refused",
    )
    assert "s3cret" not in out + err


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_wrong_password(command: list[str], secured_socket: str) -> None:
    url = f"postgresql://secured:wrong-password@/postgres?host={secured_socket}"
    code, _, err, _ = run(command, url)
    assert code == 2
    assert_one_line(
        err,
        f"picloud: cannot connect to DATABASE_URL=postgresql://secured:***@/postgres"
        f"?host={secured_socket} within 1 s: "
        'password authentication failed for user "secured"',
    )


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_unknown_database(command: list[str], secured_socket: str) -> None:
    url = f"postgresql://secured:right-password@/no_such_db?host={secured_socket}"
    code, _, err, _ = run(command, url)
    assert code == 2
    assert_one_line(
        err,
        f"picloud: cannot connect to DATABASE_URL=postgresql://secured:***@/no_such_db"
        f"?host={secured_socket} within 1 s: "
        'database "no_such_db" does not exist',
    )


def test_unknown_host() -> None:
    code, _, err, _ = run(["apps", "list"], "postgresql://u:pw@no-such-host.invalid/db")
    assert code == 2
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith(
        "picloud: cannot connect to DATABASE_URL=postgresql://u:***@no-such-host.invalid/db "
        "within 1 s: failed to resolve host 'no-such-host.invalid'"
    ), err


def test_default_timeout_is_ten_seconds() -> None:
    port = free_port()
    code, _, err, took = run(["dispatcher"], f"postgresql://u@127.0.0.1:{port}/db", None)
    assert code == 2 and "within 10 s: Connection refused" in err
    assert 9 <= took <= 10 + 5, took  # ten seconds of retries plus the interpreter's start


def test_zero_waits_for_ever_and_says_so(secured_socket: str) -> None:
    url = f"postgresql://secured:wrong-password@/postgres?host={secured_socket}"
    env = picloud_env(DATABASE_URL=url, PICLOUD_DB_CONNECT_TIMEOUT_SEC="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "picloud", "apps", "list"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(7)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "waiting for DATABASE_URL=postgresql://secured:***@" in err
    assert "password authentication failed" in err
    assert "wrong-password" not in err


def test_a_good_url_after_a_late_start(secured_socket: str) -> None:
    url = f"postgresql://secured:right-password@/postgres?host={secured_socket}"
    code, _, err, _ = run(["db-url"], url)
    assert code == 0, err


def test_bad_setting_is_exit_2() -> None:
    code, _, err, _ = run(["apps", "list"], "postgresql://u@127.0.0.1:1/db", "soon")
    assert code == 2
    assert err.strip() == (
        "picloud: bad setting: PICLOUD_DB_CONNECT_TIMEOUT_SEC='soon': expected a number >= 0"
    )


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:p%40ss@h:5432/d", "postgresql://u:***@h:5432/d"),
        ("postgres://u@h/d", "postgres://u@h/d"),
        (
            "postgresql:///d?host=/s&password=x&user=u",
            "postgresql:///d?host=/s&password=***&user=u",
        ),
        ("host=h password=secret dbname=d", "host=h password=*** dbname=d"),
        ("host=h password='a b' dbname=d", "host=h password=*** dbname=d"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_the_two_settings_parse_and_refuse() -> None:
    from picloud.settings import SettingsError, load_settings

    assert load_settings({}).db_connect_timeout_sec == 10.0
    assert load_settings({}).log_format == "text"
    assert load_settings({"PICLOUD_DB_CONNECT_TIMEOUT_SEC": "0"}).db_connect_timeout_sec == 0.0
    assert load_settings({"PICLOUD_DB_CONNECT_TIMEOUT_SEC": "2.5"}).db_connect_timeout_sec == 2.5
    assert load_settings({"PICLOUD_LOG_FORMAT": "JSON"}).log_format == "json"
    for name, bad in (
        ("PICLOUD_DB_CONNECT_TIMEOUT_SEC", "-1"),
        ("PICLOUD_DB_CONNECT_TIMEOUT_SEC", "inf"),
        ("PICLOUD_DB_CONNECT_TIMEOUT_SEC", "nan"),
        ("PICLOUD_LOG_FORMAT", "xml"),
    ):
        with pytest.raises(SettingsError, match=name):
            load_settings({name: bad})
