"""``picloud serve`` as a real process on the embedded database, and the CLI."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg

from tests.fix_server import free_port
from tests.procs import picloud_env, run_cli, start_picloud, stop, wait_healthy


def _post(url: str, key: str, body: dict[str, str]) -> dict[str, str]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        data: dict[str, str] = json.loads(resp.read())
        return data


def _get(url: str, key: str) -> dict[str, list[dict[str, str]]]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        data: dict[str, list[dict[str, str]]] = json.loads(resp.read())
        return data


def test_embedded_serve_keeps_data_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    env = picloud_env(PICLOUD_LISTEN=f"127.0.0.1:{port}", PICLOUD_DATA_DIR=str(tmp_path / "data"))
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"

    proc = start_picloud(["serve"], env, tmp_path, log)
    try:
        wait_healthy(url, proc, log)
        key_file = tmp_path / "data" / "admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert key in log.read_text(), "the created admin key is printed once"
        created = _post(url + "/api/v1/apps", key, {"slug": "keepme", "name": "Keep me"})
    finally:
        assert stop(proc) == 0
    assert "embedded PostgreSQL" in log.read_text()

    proc = start_picloud(["serve"], env, tmp_path, log)
    try:
        wait_healthy(url, proc, log)
        apps = _get(url + "/api/v1/apps", key)["apps"]
        assert [a["id"] for a in apps] == [created["id"]]
        assert log.read_text().count(key) == 1, "no second admin key on restart"
    finally:
        assert stop(proc) == 0
    # The embedded PostgreSQL stopped with the last process: its pid file is gone.
    assert not (tmp_path / "data" / "pg" / "postmaster.pid").exists()


def test_cli_admin_commands(database: str) -> None:
    made = run_cli(database, "--json", "apps", "create", "--slug", "cliapp", "--name", "CLI app")
    assert made.returncode == 0, made.stderr
    app = json.loads(made.stdout)
    dom = run_cli(database, "--json", "domains", "add", "cliapp", "cli.example.com")
    assert dom.returncode == 0, dom.stderr
    key = run_cli(
        database, "--json", "keys", "create", "--app", "cliapp", "-c", "kv:read", "-c", "kv:write"
    )
    assert key.returncode == 0, key.stderr
    created = json.loads(key.stdout)
    assert created["capabilities"] == ["kv:read", "kv:write"]
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT picloud.resolve_app('CLI.example.com:443')").fetchone()
        assert row is not None and str(row[0]) == app["id"]
        auth = conn.execute(
            "SELECT app_id FROM picloud.authenticate_key(%s)", (created["key"],)
        ).fetchone()
        assert auth is not None and str(auth[0]) == app["id"]

    dup = run_cli(database, "--json", "apps", "create", "--slug", "cliapp", "--name", "again")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad = run_cli(database, "--json", "keys", "create", "--app", "cliapp", "-c", "nope")
    assert bad.returncode == 1 and "unknown capabilities: nope" in bad.stderr
    missing = run_cli(database, "--json", "domains", "add", "ghost", "x.test")
    assert missing.returncode == 1 and "no app 'ghost'" in missing.stderr
    again = run_cli(database, "migrate")
    assert again.returncode == 0 and "none (up to date)" in again.stdout


def test_version_and_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "picloud", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "server 1.1.6 sdk 1.7 dashboard 0.12.0 client 1.0.0"
    for cmd in (["--help"], ["serve", "--help"], ["keys", "create", "--help"]):
        helped = subprocess.run(
            [sys.executable, "-m", "picloud", *cmd], capture_output=True, text=True, check=True
        )
        assert "usage: picloud" in helped.stdout
