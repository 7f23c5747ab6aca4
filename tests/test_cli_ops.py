"""Operating from the command line: bulk redrive of 10,000 dead letters (counted,
idempotent, a progress bar on a terminal and none with --json), `picloud psql` against the
embedded database, quiet admin commands and JSON log lines."""

from __future__ import annotations

import json
import logging
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from aiohttp import web
from aiohttp.test_utils import TestServer

from picloud.db import Row
from picloud.embedded import embedded_postgres
from picloud.logs import JsonFormatter, app_id, log_context
from picloud.node import Metrics
from picloud.web import request_id
from picloud.web.middleware import request_middleware
from tests.fix_server import free_port
from tests.procs import picloud_env, run_cli, stop, wait_healthy
from tests.redrive_util import seed_dead_letters
from tests.test_sql_outbox import make_trigger, make_webhook

Conn = psycopg.Connection[Row]


def run_on_tty(env: dict[str, str], *args: str, timeout: float = 120) -> tuple[int, str, str]:
    """``picloud ARGS`` with stderr on a pseudo-terminal: (exit code, stdout, terminal text)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "picloud", *args],
        env={**env, "TERM": "xterm", "COLUMNS": "100"},
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    return proc.wait(10), out, b"".join(chunks).decode(errors="replace")


def test_bulk_redrive_of_ten_thousand(database: str, db: Conn) -> None:
    app = db.execute(
        "INSERT INTO picloud.apps (slug, name) VALUES ('bulk', 'bulk') RETURNING id"
    ).fetchone()
    assert app is not None
    hook = make_webhook(db, app["id"])
    trig = make_trigger(db, app["id"], hook, "kv", {}, name="t")
    seed_dead_letters(db, app["id"], trig, hook, 10_000, age="30 minutes")
    seed_dead_letters(db, app["id"], trig, hook, 50, age="3 hours")
    seed_dead_letters(db, app["id"], trig, hook, 20, source="docs")
    env = picloud_env(DATABASE_URL=database)

    code, out, tty = run_on_tty(
        env,
        "dead-letters",
        "retry",
        "--app",
        "bulk",
        "--source",
        "kv",
        "--since",
        "1h",
        "--batch",
        "700",
    )
    assert code == 0, tty
    assert "retrying dead letters" in tty and "10000/10000" in tty, tty
    assert out.split() == ["retried", "10000", "matching", "10000"]
    counts = db.execute(
        "SELECT count(*) AS deliveries, count(DISTINCT retry_of) AS retried_once"
        " FROM picloud.deliveries"
    ).fetchone()
    assert counts == {"deliveries": 10_000, "retried_once": 10_000}

    # Again: nothing left to retry, and no bar for --json even on a terminal.
    code, out, tty = run_on_tty(
        env,
        "dead-letters",
        "retry",
        "--app",
        "bulk",
        "--source",
        "kv",
        "--since",
        "1h",
        "--json",
    )
    assert code == 0 and json.loads(out) == {"retried": 0, "matching": 0}
    assert "retrying dead letters" not in tty
    code, out, tty = run_on_tty(env, "dead-letters", "retry", "--app", "bulk", "--json")
    assert code == 0 and json.loads(out) == {"retried": 70, "matching": 70}
    assert "retrying" not in tty
    total = db.execute("SELECT count(*) AS n FROM picloud.deliveries").fetchone()
    assert total == {"n": 10_070}
    unretried = db.execute(
        "SELECT count(*) AS n FROM picloud.dead_letters WHERE retried_at IS NULL"
    ).fetchone()
    assert unretried == {"n": 0}


def test_no_progress_bar_when_stderr_is_not_a_terminal(database: str, db: Conn) -> None:
    app = db.execute(
        "INSERT INTO picloud.apps (slug, name) VALUES ('pipe', 'pipe') RETURNING id"
    ).fetchone()
    assert app is not None
    hook = make_webhook(db, app["id"])
    seed_dead_letters(db, app["id"], make_trigger(db, app["id"], hook, "kv", {}), hook, 30)
    done = run_cli(database, "dead-letters", "retry", "--app", "pipe", "--batch", "7")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.split() == ["retried", "30", "matching", "30"]


def embedded_data_dir() -> Path:
    """A data dir outside pytest's tmp root, which other pytest runs may chmod 0700 while
    the embedded PostgreSQL (its own OS user) needs to traverse it."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="picloud-cli-", dir=shm if shm.is_dir() else None))


def test_psql_and_db_url_on_the_embedded_database(tmp_path: Path) -> None:
    data = embedded_data_dir()
    env = picloud_env(PICLOUD_DATA_DIR=str(data))
    migrated = subprocess.run(
        [sys.executable, "-m", "picloud", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "picloud",
            "psql",
            "-At",
            "-c",
            "select 1",
            "-c",
            "select count(*) from picloud.apps",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0"]
    failing = subprocess.run(
        [sys.executable, "-m", "picloud", "psql", "-v", "ON_ERROR_STOP=1", "-c", "select nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert failing.returncode != 0 and "nope" in failing.stderr, "psql's exit code is passed on"
    no_psql = subprocess.run(
        [sys.executable, "-m", "picloud", "psql", "-c", "select 1"],
        env={**env, "PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert no_psql.returncode == 1
    assert no_psql.stderr.startswith("picloud: psql is not installed")
    url = subprocess.run(
        [sys.executable, "-m", "picloud", "db-url"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert url.returncode == 0, url.stderr
    try:
        with psycopg.connect(url.stdout.strip()) as conn:
            assert conn.execute("SELECT count(*) FROM picloud.apps").fetchone() == (0,)
    finally:
        # db-url left the server running: attach (dropping its dead holder) and stop it.
        with embedded_postgres(data):
            pass
        shutil.rmtree(data, ignore_errors=True)


def test_admin_commands_print_only_their_result() -> None:
    data = embedded_data_dir()
    try:
        check_quiet_and_json_logs(picloud_env(PICLOUD_DATA_DIR=str(data)))
    finally:
        shutil.rmtree(data, ignore_errors=True)


def check_quiet_and_json_logs(env: dict[str, str]) -> None:
    unmigrated = subprocess.run(
        [sys.executable, "-m", "picloud", "apps", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert unmigrated.returncode == 2 and "Traceback" not in unmigrated.stderr
    assert "run `picloud migrate`" in unmigrated.stderr
    migrated = subprocess.run(
        [sys.executable, "-m", "picloud", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0 and migrated.stderr == "", migrated.stderr
    quiet = subprocess.run(
        [sys.executable, "-m", "picloud", "apps", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert quiet.returncode == 0 and quiet.stderr == "" and json.loads(quiet.stdout) == {"apps": []}
    loud = subprocess.run(
        [sys.executable, "-m", "picloud", "apps", "list", "-v"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert loud.returncode == 0 and "INFO picloud.embedded: embedded PostgreSQL" in loud.stderr
    as_json = subprocess.run(
        [sys.executable, "-m", "picloud", "-v", "apps", "list"],
        env={**env, "PICLOUD_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [json.loads(line) for line in as_json.stderr.splitlines()]
    assert any(line["logger"] == "picloud.embedded" for line in lines)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)


def test_server_logs_are_json_lines(database: str, tmp_path: Path) -> None:
    port = free_port()
    env = picloud_env(
        DATABASE_URL=database,
        PICLOUD_LISTEN=f"127.0.0.1:{port}",
        PICLOUD_LOG_FORMAT="json",
        PICLOUD_DATA_DIR=str(tmp_path / "data"),
        PICLOUD_ROLES="relay,gc",
    )
    log = tmp_path / "serve.log"
    err = tmp_path / "serve.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "picloud", "serve"],
        env=env,
        stdout=log.open("wb"),
        stderr=err.open("wb"),
        start_new_session=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, err)
    finally:
        assert stop(proc) == 0
    records = [json.loads(line) for line in err.read_text().splitlines()]
    assert records, "the server logged something"
    for rec in records:
        assert set(rec) >= {"time", "level", "logger", "message"}, rec
        assert rec["level"] in ("INFO", "WARNING", "ERROR")
    assert any(r["message"].startswith("role relay started") for r in records)


def test_json_formatter_carries_request_and_app_ids() -> None:
    fmt = JsonFormatter()
    record = logging.LogRecord("picloud.web", logging.WARNING, __file__, 1, "slow %s", ("x",), None)
    assert json.loads(fmt.format(record)).keys() == {"time", "level", "logger", "message"}
    with log_context(request="req-1", app="a1b2"):
        entry: dict[str, Any] = json.loads(fmt.format(record))
    assert entry["message"] == "slow x" and entry["level"] == "WARNING"
    assert (entry["request_id"], entry["app_id"]) == ("req-1", "a1b2")
    assert "request_id" not in json.loads(fmt.format(record)), "the context ends with the block"


async def test_request_log_lines_name_their_app_and_no_other() -> None:
    records: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(json.loads(JsonFormatter().format(record)))

    log = logging.getLogger("picloud.test.requests")
    log.addHandler(Collect())
    log.setLevel(logging.INFO)

    async def handler(request: web.Request) -> web.Response:
        if "app" in request.query:
            app_id.set(request.query["app"])  # as require_app does
        log.info("handled %s", request.path_qs)
        return web.Response(text="ok")

    # The server's own middleware: the request id it assigns (and
    # answers in X-Request-Id) is the one every log line of the request carries.
    app = web.Application(middlewares=[request_middleware(Metrics())])
    app.on_response_prepare.append(request_id.add_header)
    app.router.add_get("/x", handler)
    answered: list[str] = []
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        # One keep-alive connection for both requests.
        for query in ("?app=a1", ""):
            async with session.get(server.make_url(f"/x{query}")) as resp:
                assert resp.status == 200
                answered.append(resp.headers["X-Request-Id"])
    assert answered[0] != answered[1]
    assert [(r["message"], r.get("app_id"), r.get("request_id")) for r in records] == [
        ("handled /x?app=a1", "a1", answered[0]),
        ("handled /x", None, answered[1]),
    ]


def test_publish_a_batch_from_stdin(database: str, db: Conn) -> None:
    app = db.execute(
        "INSERT INTO picloud.apps (slug, name) VALUES ('feed', 'feed') RETURNING id"
    ).fetchone()
    assert app is not None
    db.execute("SELECT picloud.create_topic(%s, 'news', false, 'token')", (app["id"],))
    done = subprocess.run(
        [sys.executable, "-m", "picloud", "publish", "feed", "news", "-f", "-", "--json"],
        env=picloud_env(DATABASE_URL=database),
        input='{"n": 1}\n{"n": 2}\n',
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [m["id"] for m in json.loads(done.stdout)["messages"]] == [1, 2]
    rows = db.execute("SELECT message FROM picloud.messages ORDER BY seq").fetchall()
    assert [r["message"] for r in rows] == [{"n": 1}, {"n": 2}]
