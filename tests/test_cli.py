"""Every CLI verb against a real database: a table by default, the HTTP API's shapes with
--json, exit 1 with the SQL function's message for bad input, exit 2 when the database
can't be reached."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from picloud import cli
from picloud.db import Row
from tests.procs import run_cli

Conn = psycopg.Connection[Row]
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def picloud(
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """``picloud(*args)`` -> (exit code, stdout, stderr), run in this process."""
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("PICLOUD_FILES_ROOT", str(tmp_path / "files"))
    monkeypatch.setattr(cli.logs, "configure", lambda *a, **k: None)  # keep pytest's handlers

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def ok_json(picloud: Cli, *args: str) -> Any:
    code, out, err = picloud(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def refused(picloud: Cli, *args: str) -> str:
    code, out, err = picloud(*args)
    assert code == 1, (out, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1
    return err


def test_apps_domains_keys(picloud: Cli, db: Conn) -> None:
    app = ok_json(picloud, "apps", "create", "--slug", "shop", "--name", "Shop")
    code, out, _ = picloud("apps", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "SLUG", "NAME", "CREATED_AT"]
    assert row.split()[:3] == [app["id"], "shop", "Shop"]
    assert [a["slug"] for a in ok_json(picloud, "apps", "list")["apps"]] == ["shop"]
    assert "already exists" in refused(picloud, "apps", "create", "--slug", "shop", "--name", "x")
    assert "invalid value" in refused(
        picloud, "apps", "create", "--slug", "Bad Slug", "--name", "x"
    )

    ok_json(picloud, "domains", "add", "shop", "Shop.Example.com.")
    assert ok_json(picloud, "domains", "list", "shop")["domains"][0]["host"] == "shop.example.com"
    assert "without port" in refused(picloud, "domains", "add", "shop", "a.test:80")
    assert ok_json(picloud, "domains", "remove", "shop", "shop.example.com") == {
        "removed": "shop.example.com"
    }
    assert "is not a host name of" in refused(picloud, "domains", "remove", "shop", "x.test")

    key = ok_json(picloud, "keys", "create", "--app", "shop", "-c", "kv:read", "--name", "ro")
    code, out, _ = picloud("keys", "list", "shop")
    assert code == 0 and "ro" in out and key["key"] not in out
    listed = ok_json(picloud, "keys", "list", "shop")["keys"]
    assert [k["id"] for k in listed] == [key["id"]] and listed[0]["revoked_at"] is None
    revoked = ok_json(picloud, "keys", "revoke", "shop", key["id"])
    assert revoked["revoked_at"] is not None
    assert "unknown capabilities: nope" in refused(
        picloud, "keys", "create", "--app", "shop", "-c", "nope"
    )
    assert "not a key id" in refused(picloud, "keys", "revoke", "shop", "123")
    assert "no app 'ghost'" in refused(picloud, "keys", "list", "ghost")

    assert ok_json(picloud, "apps", "delete", "shop") == {"deleted": app["id"]}
    assert ok_json(picloud, "apps", "list") == {"apps": []}


def test_topics_tokens_publish(picloud: Cli, db: Conn, tmp_path: Path) -> None:
    ok_json(picloud, "apps", "create", "--slug", "chat", "--name", "Chat")
    made = ok_json(picloud, "topics", "create", "chat", "room", "--external")
    assert (made["external_subscribable"], made["auth_mode"]) == (True, "token")
    changed = ok_json(
        picloud, "topics", "update", "chat", "room", "--internal", "--auth-mode", "public"
    )
    assert (changed["external_subscribable"], changed["auth_mode"]) == (False, "public")
    assert ok_json(picloud, "topics", "update", "chat", "room", "--presence")["presence"] is True
    assert (
        ok_json(picloud, "topics", "update", "chat", "room", "--no-presence")["presence"] is False
    )
    code, out, _ = picloud("topics", "list", "chat")
    assert code == 0 and out.split()[:6] == [
        "NAME",
        "EXTERNAL_SUBSCRIBABLE",
        "AUTH_MODE",
        "PRESENCE",
        "CREATED_AT",
        "UPDATED_AT",
    ]
    assert "room" in out and " no " in out
    watched = ok_json(picloud, "topics", "create", "chat", "lobby", "--presence")
    assert (watched["presence"], watched["auth_mode"], made["presence"]) == (True, "token", False)
    assert ok_json(picloud, "topics", "delete", "chat", "lobby") == {"deleted": "lobby"}
    assert "invalid topic name" in refused(picloud, "topics", "create", "chat", "bad*")
    assert "no topic 'nope'" in refused(picloud, "topics", "update", "chat", "nope", "--external")

    assert ok_json(picloud, "publish", "chat", "room", '{"n": 1}')["id"] == 1
    batch = tmp_path / "batch.jsonl"
    batch.write_text('{"n": 2}\n\n"three"\n[4]\n')
    published = ok_json(picloud, "publish", "chat", "room", "--file", str(batch))["messages"]
    assert [m["id"] for m in published] == [2, 3, 4]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"n": 5}\n{oops\n')
    assert "line 2 is not JSON" in refused(picloud, "publish", "chat", "room", "-f", str(bad))
    # A batch refused by SQL half way is published not at all.
    too_big = tmp_path / "big.jsonl"
    too_big.write_text('{"n": 5}\n' + json.dumps({"x": "y" * 70000}) + "\n")
    refused(picloud, "publish", "chat", "room", "-f", str(too_big))
    count = db.execute("SELECT count(*) AS n FROM picloud.messages").fetchone()
    assert count == {"n": 4}
    assert "no such topic" in refused(picloud, "publish", "chat", "ghost", "{}")

    token = ok_json(picloud, "tokens", "mint", "chat", "room", "--ttl", "60")
    assert token["token"] and token["expires_at"]
    assert ok_json(picloud, "tokens", "rotate", "chat", "--grace", "0")["key_version"] == 2
    assert ok_json(picloud, "topics", "delete", "chat", "room") == {"deleted": "room"}
    assert "no topic 'room'" in refused(picloud, "topics", "delete", "chat", "room")


def test_kv_docs_files(picloud: Cli, tmp_path: Path) -> None:
    ok_json(picloud, "apps", "create", "--slug", "data", "--name", "Data")
    assert ok_json(picloud, "kv", "put", "data", "user:1", '{"name": "Ada"}')["created"] is True
    assert ok_json(picloud, "kv", "get", "data", "user:1")["value"] == {"name": "Ada"}
    ok_json(picloud, "kv", "put", "data", "user:2", "2")
    entries = ok_json(picloud, "kv", "list", "data", "--prefix", "user:", "--limit", "1")["entries"]
    assert [e["key"] for e in entries] == ["user:1"]
    after = ok_json(picloud, "kv", "list", "data", "--after", "user:1")["entries"]
    assert [e["key"] for e in after] == ["user:2"]
    assert "invalid key" in refused(picloud, "kv", "put", "data", "bad key", "1")
    assert "not JSON" in refused(picloud, "kv", "put", "data", "k", "{")
    assert ok_json(picloud, "kv", "delete", "data", "user:1") == {"deleted": "user:1"}
    assert "no key 'user:1'" in refused(picloud, "kv", "get", "data", "user:1")

    doc = ok_json(picloud, "docs", "put", "data", "people", "ada", '{"born": 1815}')
    assert doc["version"] == 1
    assert (
        ok_json(
            picloud, "docs", "put", "data", "people", "ada", '{"born": 1816}', "--if-version", "1"
        )["version"]
        == 2
    )
    assert "version conflict" in refused(
        picloud, "docs", "delete", "data", "people", "ada", "--if-version", "1"
    )
    assert [d["id"] for d in ok_json(picloud, "docs", "list", "data", "people")["docs"]] == ["ada"]
    assert ok_json(picloud, "docs", "get", "data", "people", "ada")["data"] == {"born": 1816}
    assert "must be a JSON object" in refused(picloud, "docs", "put", "data", "people", "x", "[1]")
    assert ok_json(picloud, "docs", "delete", "data", "people", "ada")["version"] == 2
    assert "no such document" in refused(picloud, "docs", "delete", "data", "people", "ada")
    refused(picloud, "docs", "list", "data", "bad collection!")

    source = tmp_path / "hello.txt"
    source.write_bytes(b"hello, files\n")
    put = ok_json(picloud, "files", "put", "data", "docs/hello.txt", str(source))
    assert (put["size"], put["content_type"]) == (13, "text/plain")
    assert [f["path"] for f in ok_json(picloud, "files", "list", "data")["files"]] == [
        "docs/hello.txt"
    ]
    code, out, _ = picloud("files", "get", "data", "docs/hello.txt")
    assert code == 0 and out == "hello, files\n"
    refused(picloud, "files", "put", "data", "../escape", str(source))
    assert ok_json(picloud, "files", "delete", "data", "docs/hello.txt") == {
        "deleted": "docs/hello.txt"
    }
    assert "no file" in refused(picloud, "files", "get", "data", "docs/hello.txt")
    assert "no file 'docs/hello.txt'" in refused(
        picloud, "files", "delete", "data", "docs/hello.txt"
    )
    assert "invalid" in refused(picloud, "files", "delete", "data", "../escape")
    assert list((tmp_path / "files").rglob("*.txt")) == []


def test_handlers_triggers_cron_deliveries(picloud: Cli, db: Conn) -> None:
    ok_json(picloud, "apps", "create", "--slug", "ops", "--name", "Ops")
    hook = ok_json(picloud, "handlers", "create", "ops", "hook", "--url", "http://127.0.0.1:9/h")
    assert hook["kind"] == "webhook" and len(hook["secret"]) == 64
    assert "invalid value" in refused(
        picloud, "handlers", "create", "ops", "h2", "--url", "ftp://x"
    )
    assert "not --function" in refused(
        picloud, "handlers", "create", "ops", "h3", "--function", "a.b"
    )
    code, out, _ = picloud("handlers", "list", "ops")
    assert code == 0 and "hook" in out and hook["secret"] not in out
    ok_json(picloud, "topics", "create", "ops", "t")
    live = ok_json(picloud, "handlers", "create", "ops", "live", "--kind", "topic", "--topic", "t")
    assert (live["kind"], live["topic"]) == ("topic", "t")
    assert "--topic NAME only" in refused(
        picloud, "handlers", "create", "ops", "h4", "--kind", "topic", "--url", "http://x/"
    )
    assert "--topic is for handlers" in refused(
        picloud, "handlers", "create", "ops", "h5", "--url", "http://x/", "--topic", "t"
    )

    trig = ok_json(
        picloud,
        "triggers",
        "create",
        "ops",
        "on-kv",
        "--source",
        "kv",
        "--handler",
        hook["id"],
        "--filter",
        '{"match": "a*"}',
        "--max-attempts",
        "2",
    )
    assert (trig["filter"], trig["max_attempts"]) == ({"match": "a*"}, 2)
    assert [t["id"] for t in ok_json(picloud, "triggers", "list", "ops")["triggers"]] == [
        trig["id"]
    ]
    off = ok_json(
        picloud, "triggers", "update", "ops", trig["id"], "--disable", "--max-attempts", "3"
    )
    assert (off["enabled"], off["max_attempts"], off["filter"]) == (False, 3, {"match": "a*"})
    on = ok_json(picloud, "triggers", "update", "ops", trig["id"], "--enable")
    assert on["enabled"] is True
    assert "invalid value" in refused(
        picloud, "triggers", "update", "ops", trig["id"], "--max-attempts", "0"
    )
    assert "give at least one" in refused(picloud, "triggers", "update", "ops", trig["id"])
    moved = ok_json(picloud, "handlers", "update", "ops", hook["id"], "--timeout-ms", "500")
    assert moved["timeout_ms"] == 500 and "secret" not in moved
    assert "invalid value" in refused(
        picloud, "handlers", "update", "ops", hook["id"], "--url", "ftp://nope"
    )
    assert "no handler" in refused(
        picloud, "handlers", "update", "ops", "00000000-0000-0000-0000-000000000000", "--name", "x"
    )
    assert "unknown reference" in refused(
        picloud,
        "triggers",
        "create",
        "ops",
        "t2",
        "--source",
        "kv",
        "--handler",
        "00000000-0000-0000-0000-000000000000",
    )
    assert "must be an object" in refused(
        picloud,
        "triggers",
        "create",
        "ops",
        "t3",
        "--source",
        "kv",
        "--handler",
        hook["id"],
        "--filter",
        "[1]",
    )

    job = ok_json(
        picloud, "cron", "put", "ops", "nightly", "0 3 * * *", "--timezone", "Europe/Paris"
    )
    assert job["expression"] == "0 3 * * *" and job["next_run_at"]
    assert (
        ok_json(picloud, "cron", "put", "ops", "nightly", "30 3 * * *")["expression"]
        == "30 3 * * *"
    )
    assert [j["name"] for j in ok_json(picloud, "cron", "list", "ops")["cron_jobs"]] == ["nightly"]
    # A put of a new job whose name breaks the rule is refused, and nothing is written.
    assert "name" in refused(picloud, "cron", "put", "ops", "no spaces", "* * * * *")
    assert [j["name"] for j in ok_json(picloud, "cron", "list", "ops")["cron_jobs"]] == ["nightly"]
    assert "expression" in refused(picloud, "cron", "put", "ops", "bad", "61 * * * *")
    assert "timezone" in refused(
        picloud, "cron", "put", "ops", "bad", "* * * * *", "--timezone", "Mars/Base"
    )
    assert ok_json(picloud, "cron", "delete", "ops", "nightly") == {"deleted": "nightly"}
    assert "no cron job 'nightly'" in refused(picloud, "cron", "delete", "ops", "nightly")

    db.execute(
        "INSERT INTO picloud.kv (app_id, key, value) SELECT id, 'apple', '1' FROM picloud.apps"
    )
    [delivery] = ok_json(picloud, "deliveries", "list", "ops", "--status", "pending")["deliveries"]
    assert delivery["subject"] == "apple"
    shown = ok_json(picloud, "deliveries", "show", "ops", str(delivery["id"]))
    assert shown["attempts"] == [] and shown["attempts_made"] == 0
    code, out, _ = picloud("deliveries", "list", "ops")
    assert code == 0 and out.split()[:3] == ["ID", "STATUS", "SOURCE"]
    assert "no delivery 999" in refused(picloud, "deliveries", "show", "ops", "999")
    assert "triggers still use" in refused(picloud, "handlers", "delete", "ops", hook["id"])
    assert ok_json(picloud, "triggers", "delete", "ops", trig["id"]) == {"deleted": trig["id"]}
    assert f"no trigger {trig['id']}" in refused(picloud, "triggers", "delete", "ops", trig["id"])
    assert f"no trigger {trig['id']}" in refused(
        picloud, "triggers", "update", "ops", trig["id"], "--enable"
    )
    assert ok_json(picloud, "handlers", "delete", "ops", hook["id"]) == {"deleted": hook["id"]}
    assert f"no handler {hook['id']}" in refused(picloud, "handlers", "delete", "ops", hook["id"])


def test_dead_letters_single_retry_is_idempotent(picloud: Cli, db: Conn) -> None:
    from tests.redrive_util import seed_dead_letters
    from tests.test_sql_outbox import make_trigger, make_webhook

    app = ok_json(picloud, "apps", "create", "--slug", "dl", "--name", "DL")
    hook = make_webhook(db, app["id"])
    [dl] = seed_dead_letters(db, app["id"], make_trigger(db, app["id"], hook, "kv", {}), hook, 1)
    assert ok_json(picloud, "dead-letters", "show", str(dl))["last_error"] == "HTTP 503"
    code, out, _ = picloud("dead-letters", "list", "dl")
    assert code == 0 and out.split()[:2] == ["ID", "SOURCE"]
    first = ok_json(picloud, "dead-letters", "retry", str(dl))
    code, out, err = picloud("dead-letters", "retry", str(dl), "--json")
    assert code == 1
    assert json.loads(out)["error"] == {
        "code": "already_retried",
        "message": f"dead letter {dl} was already retried as delivery {first['delivery_id']}"
        "; retry with force to enqueue it again",
        "delivery_id": first["delivery_id"],
    }
    assert f"already retried as delivery {first['delivery_id']}" in err
    forced = ok_json(picloud, "dead-letters", "retry", str(dl), "--force")
    assert forced["delivery_id"] != first["delivery_id"]
    assert "not both" in refused(picloud, "dead-letters", "retry", str(dl), "--app", "dl")
    assert "--app" in refused(picloud, "dead-letters", "retry")
    assert "duration" in refused(
        picloud, "dead-letters", "retry", "--app", "dl", "--since", "yesterday"
    )
    assert ok_json(picloud, "dead-letters", "discard", str(dl)) == {"discarded": dl}
    assert f"no dead letter {dl}" in refused(picloud, "dead-letters", "retry", str(dl))


def test_unreachable_database_is_exit_2(tmp_path: Path) -> None:
    done = run_cli("postgresql://u:pw@127.0.0.1:1/db", "kv", "list", "x")
    assert done.returncode == 2 and "cannot connect to DATABASE_URL" in done.stderr
