"""plpgsql_check over every PL/pgSQL function in schema `picloud`.

Starts its own PostgreSQL 15 cluster (Debian's `postgresql-15-plpgsql-check` provides the
extension; installed here with apt-get when missing and running as root), migrates a
database, and checks each function — trigger functions against a table that uses them.
Errors fail; a warning fails too unless `scripts/sql_lint_allow.txt` names it with a reason.
Exit code 0 when clean.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from picloud.migrate import migrate
from tests.pg_cluster import pg15_cluster

EXTENSION = Path("/usr/share/postgresql/15/extension/plpgsql_check.control")
ALLOW_FILE = Path(__file__).with_name("sql_lint_allow.txt")

CHECK = """
SELECT p.oid::regprocedure::text AS function, r.lineno, r.level, r.sqlstate, r.message
  FROM pg_proc p
  JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql'
  LEFT JOIN LATERAL (
        SELECT t.tgrelid FROM pg_trigger t WHERE t.tgfoid = p.oid ORDER BY t.tgrelid LIMIT 1
       ) trg ON p.prorettype = 'trigger'::regtype
  CROSS JOIN LATERAL plpgsql_check_function_tb(
        p.oid, coalesce(trg.tgrelid, 0), fatal_errors => false,
        other_warnings => true, performance_warnings => false, extra_warnings => true) r
 WHERE p.pronamespace = 'picloud'::regnamespace
   AND (p.prorettype <> 'trigger'::regtype OR trg.tgrelid IS NOT NULL)
 ORDER BY 1, 2
"""

UNATTACHED = """
SELECT p.oid::regprocedure::text
  FROM pg_proc p
 WHERE p.pronamespace = 'picloud'::regnamespace
   AND p.prorettype = 'trigger'::regtype
   AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid)
"""


def _ensure_extension() -> None:
    if EXTENSION.exists():
        return
    if os.geteuid() != 0:
        raise SystemExit(
            "sql-lint: plpgsql_check is missing; install Debian's postgresql-15-plpgsql-check"
        )
    print("sql-lint: installing postgresql-15-plpgsql-check", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "postgresql-15-plpgsql-check"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def _allowed() -> list[tuple[str, str]]:
    """(function prefix, message fragment) pairs; every line must carry a `# reason`."""
    pairs = []
    for raw in ALLOW_FILE.read_text().splitlines() if ALLOW_FILE.exists() else []:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry, sep, reason = line.partition("#")
        func, _, fragment = entry.partition(":")
        if not sep or not reason.strip() or not fragment.strip():
            raise SystemExit(f"sql-lint: {ALLOW_FILE.name}: needs 'function: message # reason'")
        pairs.append((func.strip(), fragment.strip()))
    return pairs


def main() -> int:
    _ensure_extension()
    allowed = _allowed()
    with pg15_cluster() as conninfo:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute("CREATE DATABASE picloud_lint")
        url = conninfo.replace("dbname=postgres", "dbname=picloud_lint")
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION plpgsql_check")
            rows = conn.execute(CHECK).fetchall()
            unattached = [r[0] for r in conn.execute(UNATTACHED)]
            count = conn.execute(
                "SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
                " WHERE l.lanname = 'plpgsql' AND p.pronamespace = 'picloud'::regnamespace"
            ).fetchone()
    failures = 0
    for func, lineno, level, sqlstate, message in rows:
        ok = level != "error" and any(func.startswith(f) and frag in message for f, frag in allowed)
        tag = "allowed" if ok else level
        print(f"{tag}: {func} line {lineno}: [{sqlstate}] {message}")
        failures += not ok
    for func in unattached:
        print(f"error: {func} is a trigger function that no trigger uses")
        failures += 1
    checked = count[0] if count else 0
    print(f"sql-lint: {checked} PL/pgSQL functions checked, {failures} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
