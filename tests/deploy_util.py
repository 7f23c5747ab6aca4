"""Debian's nginx in front of PiCloud nodes, configured by docker/nginx.conf itself (only
its addresses and paths are swapped), with a self-signed certificate made for the run."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost (and *.localhost) and its key, made with openssl."""
    crt, key = directory / "picloud.crt", directory / "picloud.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,DNS:*.localhost",
         "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip
    return crt, key


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    port: int
    access_log: Path
    cert: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def stop(self) -> None:
        """Stop gracefully (SIGQUIT), so every open request is logged."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def nginx_conf(upstreams: list[int], port: int, workdir: Path, crt: Path, key: Path) -> str:
    conf = (REPO / "docker" / "nginx.conf").read_text()
    swaps = {
        "server picloud1:8080": f"server 127.0.0.1:{upstreams[0]}",
        "server picloud2:8080": f"server 127.0.0.1:{upstreams[1]}",
        "listen 443 ssl http2": f"listen 127.0.0.1:{port} ssl http2",
        "/etc/nginx/certs/picloud.crt": str(crt),
        "/etc/nginx/certs/picloud.key": str(key),
        "/var/log/nginx/picloud.log": str(workdir / "access.log"),
        "worker_processes auto;": "worker_processes 1;",
    }
    for old, new in swaps.items():
        assert old in conf, f"docker/nginx.conf no longer has {old!r}"
        conf = conf.replace(old, new)
    # Scratch paths of its own, so it never touches the system's nginx.
    temp = "\n".join(
        f"    {name}_temp_path {workdir / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return conf.replace("http {\n", "http {\n" + temp + "\n", 1)


def start_nginx(upstreams: list[int], port: int, workdir: Path) -> Nginx:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    crt, key = self_signed(workdir)
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_conf(upstreams, port, workdir, crt, key))
    base = [NGINX, "-p", str(workdir), "-c", str(conf)]
    globals_ = f"daemon off; pid {workdir / 'nginx.pid'}; error_log {workdir / 'error.log'};"
    check = subprocess.run([*base, "-g", globals_, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([*base, "-g", globals_], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return Nginx(proc, port, workdir / "access.log", crt)
        except OSError:
            if proc.poll() is not None:
                raise AssertionError((workdir / "error.log").read_text()) from None
            time.sleep(0.05)
    raise AssertionError("nginx did not start listening")
