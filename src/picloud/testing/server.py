"""``picloud_server``: a real ``picloud serve`` process on a free loopback port, on the
test's own database, with a known instance admin key."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ADMIN_KEY = "pck_test_admin_key_0123456789abcdef"

# Short intervals so that tests do not wait for background roles.
DEFAULT_ENV = {
    "PICLOUD_CRON_TICK_INTERVAL_MS": "200",
    "PICLOUD_DISPATCH_POLL_MS": "200",
    "PICLOUD_DISPATCH_BACKOFF_BASE_MS": "100",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without PiCloud settings, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_") and k != "DATABASE_URL"
    }
    env.update(extra)
    return env


class PiCloudServer:
    """One ``picloud serve`` process; ``kill()`` and ``start()`` again keep its port,
    database and data directory, as a crashed and restarted server would."""

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        admin_key: str = ADMIN_KEY,
        port: int | None = None,
    ) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.admin_key = admin_key
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "serve.log"
        self.env = clean_env(
            DATABASE_URL=database_url,
            PICLOUD_DATA_DIR=str(data_dir),
            PICLOUD_LISTEN=f"127.0.0.1:{self.port}",
            PICLOUD_ADMIN_KEY=admin_key,
            PICLOUD_MIGRATE="false",
            **DEFAULT_ENV,
        )
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60) -> None:
        """Start the process and wait until ``/healthz`` answers 200."""
        if self.running:
            raise RuntimeError("the server is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "picloud", "serve"],
                env=self.env,
                cwd=self.data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"picloud serve exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"picloud serve not healthy after {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM (a clean shutdown), then SIGKILL if it does not exit in time."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL: the process dies without closing anything, as in a crash."""
        return self._end(signal.SIGKILL, 30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: int, timeout: float) -> int | None:
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(10)

    def log(self) -> str:
        """What the process printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@pytest.fixture
def picloud_server_env() -> dict[str, str]:
    """Extra environment for ``picloud_server`` (override it to change settings)."""
    return {}


@pytest.fixture
def picloud_server(
    picloud_database: str,
    picloud_server_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PiCloudServer]:
    """A running ``picloud serve`` on this test's database; ``.url``, ``.admin_key``."""
    server = PiCloudServer(
        picloud_database, tmp_path_factory.mktemp("picloud"), env=picloud_server_env
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
