"""The HTTP benchmarks' load generator: ``wrk`` (C, one thread, epoll), which uses a small
share of a core, so that it does not take the servers' CPU as a Python client would on a
small machine. A route is a dict: ``method``, ``prefix``, ``suffix``, ``body`` (a Lua
string literal, or ``nil``), ``key`` (the bearer token) and ``spread``: when above 0,
request n goes to ``prefix .. (n % spread) .. suffix``, so writes spread over keys or
topics."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = """
local method, prefix, suffix = "%(method)s", "%(prefix)s", "%(suffix)s"
local body, spread = %(body)s, %(spread)d
wrk.headers["Authorization"] = "Bearer %(key)s"
if body then wrk.headers["Content-Type"] = "application/json" end
local n = 0
request = function()
  n = n + 1
  local path = prefix
  if spread > 0 then path = path .. (n %% spread) end
  return wrk.format(method, path .. suffix, nil, body)
end
"""

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_binary() -> str:
    """wrk's path; installed with Debian's package when missing and this runs as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("the HTTP benchmarks need wrk (Debian: apt-get install wrk)")
    return found


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name: [1] is the parent's PID,
    [11] and [12] the user and system CPU time in clock ticks."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used."""
    return _cpu(_stat(pid))


def postmaster_of(conninfo: str) -> int:
    """The PID of the (local) PostgreSQL server behind ``conninfo``: its backends' parent."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:  # (read while it lives)
        return int(_stat(conn.info.backend_pid)[1])


def database_cpu(postmaster: int) -> float:
    """CPU time of a PostgreSQL server's processes alive now: the postmaster, its backends
    (the servers' pools, the relay's LISTEN connection) and its writers (WAL writer,
    checkpointer, background writer). A backend that ends during a point drops out of
    its sum; the servers' pools keep theirs open through a run."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat(int(entry))
        except OSError:
            continue  # ended meanwhile
        if int(entry) == postmaster or int(fields[1]) == postmaster:
            total += _cpu(fields)
    return total


def spread(values: list[float], digits: int = 0) -> list[float]:
    """[min, max] of a figure over repeats."""
    if digits == 0:
        return [round(min(values)), round(max(values))]
    return [round(min(values), digits), round(max(values), digits)]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _latency_ms(out: str, percent: int) -> float | None:
    found = re.search(rf"^\s+{percent}%\s+([0-9.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    return round(float(found.group(1)) * _UNITS_MS[found.group(2)], 2) if found else None


def run_wrk(
    wrk: str,
    base_url: str,
    route: dict[str, Any],
    connections: int,
    duration: float,
    pid: int,
    postmaster: int | None = None,
) -> dict[str, Any]:
    """One point: ``connections`` keep-alive connections for ``duration`` s against the
    server at ``base_url`` (process ``pid``, whose CPU is counted; and the database's,
    when its ``postmaster`` is given)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(SCRIPT % route)
    try:
        db0 = database_cpu(postmaster) if postmaster else 0.0
        server0, load0, t0 = cpu_seconds(pid), children_cpu(), time.monotonic()
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s",
             script.name, base_url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout  # fmt: skip
        wall = time.monotonic() - t0
        server_cpu, load_cpu = cpu_seconds(pid) - server0, children_cpu() - load0
        db_cpu = database_cpu(postmaster) - db0 if postmaster else None
    finally:
        os.unlink(script.name)
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    assert rate is not None and done is not None, out
    answered = max(1, int(done.group(1)))
    return {
        "rps": float(rate.group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else None,
        "latency_ms_p50": _latency_ms(out, 50),
        "latency_ms_p99": _latency_ms(out, 99),
        "server_cpu_pct": round(100 * server_cpu / wall),
        "wrk_cpu_pct": round(100 * load_cpu / wall),
        # The server process's CPU (user + system) per request answered: what a faster
        # Python path lowers, whatever the machine's load does to the rates.
        "server_cpu_us_per_request": round(1e6 * server_cpu / answered),
        # The database's, and wrk's: with the server's, what one request costs the machine.
        "database_cpu_us_per_request": (
            round(1e6 * db_cpu / answered) if db_cpu is not None else None
        ),
        "wrk_cpu_us_per_request": round(1e6 * load_cpu / answered),
    }
