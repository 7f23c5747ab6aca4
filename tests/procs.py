"""Running ``picloud`` as a real process, as a user would."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from picloud.testing.server import clean_env


def picloud_env(**extra: str) -> dict[str, str]:
    """The current environment without PiCloud settings, plus ``extra``."""
    return clean_env(**extra)


def run_cli(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``picloud ARGS`` against ``database``, to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "picloud", *args],
        env=picloud_env(DATABASE_URL=database),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_picloud(
    args: list[str], env: Mapping[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "picloud", *args],
        env=dict(env),
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"picloud exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"picloud not healthy after {timeout}s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)
