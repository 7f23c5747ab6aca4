"""The README's "Five minutes with curl" and "Operating from psql", run as written against a
real server and database: if the README rots, this fails."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.fix_server import free_port
from tests.procs import picloud_env, start_picloud, stop, wait_healthy

README = Path(__file__).resolve().parent.parent / "README.md"


def section_blocks(title: str, lang: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def serve_settings(title: str) -> dict[str, str]:
    """The settings of the section's `NAME=value ... .venv/bin/picloud serve` line."""
    text = README.read_text()
    section = text[text.index(f"## {title}\n") :]
    found = re.search(r"`((?:[A-Z_]+=\S+\s+)*)\.venv/bin/picloud serve`", section)
    assert found, "the section says how to start the server"
    return dict(pair.split("=", 1) for pair in found[1].split())


def test_five_minutes_with_curl(database: str, tmp_path: Path) -> None:
    blocks = section_blocks("Five minutes with curl", "sh")
    assert len(blocks) == 4, "the section's sh blocks are what this test runs"
    port, hook_port = free_port(), free_port()
    script = "\n".join(blocks).replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    script = script.replace("9000", str(hook_port))
    env = picloud_env(
        DATABASE_URL=database,
        PICLOUD_LISTEN=f"127.0.0.1:{port}",
        PICLOUD_DISPATCH_POLL_MS="200",
        **serve_settings("Five minutes with curl"),
    )
    log = tmp_path / "serve.log"
    server = start_picloud(["serve"], env, tmp_path, log)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, log)
        assert (tmp_path / ".picloud" / "admin.key").exists()
        shell = subprocess.Popen(
            ["bash", "-u", "-c", script],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = shell.communicate(timeout=60)
        finally:
            if shell.poll() is None:
                os.killpg(shell.pid, signal.SIGKILL)
    finally:
        assert stop(server) == 0
    assert shell.returncode == 0, (out, err)
    stream = (tmp_path / "stream.txt").read_text()
    assert stream.startswith(":ok\n"), stream
    assert events(stream) == [(1, {"hello": "world"}), (2, {"hello": "again"})]
    # Then the resume after the first cursor printed message 2 only.
    assert out.count(":ok\n") == 2, out
    assert events(out.rsplit(":ok\n", 1)[1]) == [(2, {"hello": "again"})], out
    hook = [json.loads(line) for line in (tmp_path / "hook.txt").read_text().splitlines()]
    assert [(h["source"], h["event"]["message"]) for h in hook] == [
        ("pubsub", {"hello": "webhook"})
    ]
    deliveries = json.loads(out.strip().splitlines()[-1])["deliveries"]
    assert [d["status"] for d in deliveries] == ["done"]
    assert "Traceback" not in err


def events(text: str) -> list[tuple[int, object]]:
    """(id, message) of each SSE event in ``text``."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in block.splitlines()
            if line.startswith(("id: ", "data: "))
        )
        if "id" in fields:
            seq = int(fields["id"].rsplit(".", 1)[-1])  # the cursor v1.<epoch>.<seq>
            found.append((seq, json.loads(fields["data"])["message"]))
    return found


def test_operating_from_psql(database: str, tmp_path: Path) -> None:
    [sql] = section_blocks("Operating from psql", "sql")
    with psycopg.connect(database, autocommit=True) as conn:
        app = conn.execute(
            "INSERT INTO picloud.apps (slug, name) VALUES ('demo', 'Demo') RETURNING id"
        ).fetchone()
        assert app is not None
        conn.execute("SELECT picloud.create_topic(%s, 'news', true, 'token')", (app[0],))
        conn.execute(
            "INSERT INTO picloud.dead_letters"
            " (app_id, id, delivery_id, trigger_id, handler_id, source, subject, event, attempts)"
            " OVERRIDING SYSTEM VALUE VALUES"
            " (%s, 42, 1, gen_random_uuid(), gen_random_uuid(), 'kv', 'k', '{}', 3)",
            (app[0],),
        )
    script = tmp_path / "ops.sql"
    script.write_text(sql)
    done = subprocess.run(
        [sys.executable, "-m", "picloud", "psql", "-v", "ON_ERROR_STOP=1", "-f", str(script)],
        env=picloud_env(DATABASE_URL=database),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert " allow" in done.stdout
    with psycopg.connect(database) as conn:
        retried = conn.execute(
            "SELECT count(*) FROM picloud.deliveries WHERE retry_of = 42"
        ).fetchone()
        published = conn.execute("SELECT message FROM picloud.messages").fetchone()
    assert retried == (2,), "once, then once more with force"
    assert published == ({"from": "psql"},)
