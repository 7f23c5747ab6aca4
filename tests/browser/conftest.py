"""Browser fixtures: a real PiCloud in a background thread and Debian's Chromium driven by
Playwright's sync API (which cannot share a thread with a running asyncio loop, so the
server gets a thread and a loop of its own).

Every page records JavaScript errors (uncaught exceptions and console errors); a test
whose page logged one fails at teardown.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from picloud.bootstrap import ensure_admin
from picloud.settings import Settings
from picloud.web.app import create_app
from tests.fix_db import PgServer
from tests.fix_server import ADMIN_KEY, free_port, make_test_settings

expect.set_options(timeout=10_000)

CHROMIUM = os.environ.get("PICLOUD_TEST_CHROMIUM", "/usr/bin/chromium")
# The machine's network is closed: without these Chromium keeps trying to phone home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Chromium logs every 4xx/5xx fetch as a console error; the dashboard shows those to the
# person (and the tests check it does), so they are not JavaScript errors.
_HTTP_STATUS_LOG = "Failed to load resource: the server responded with a status of 4"


class ThreadServer:
    """PiCloud on a loopback port, its event loop running in a daemon thread."""

    def __init__(self, settings: Settings, conninfo: str) -> None:
        self.settings = settings
        self.conninfo = conninfo
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    async def _start(self) -> None:
        app = create_app(self.settings, self.conninfo)
        self.runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        ensure_admin(self.conninfo, self.settings)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()

    def call(self, method: str, path: str, body: Any = None, key: str = ADMIN_KEY) -> Any:
        """A JSON call with the admin key; raises AssertionError on an error status."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()!r}") from exc
        return json.loads(raw) if raw else None

    def status(self, method: str, path: str) -> int:
        req = urllib.request.Request(self.url + path, method=method)
        req.add_header("Authorization", f"Bearer {ADMIN_KEY}")
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def create_app(self, prefix: str) -> dict[str, Any]:
        slug = f"{prefix}-{uuid.uuid4().hex[:6]}"
        app: dict[str, Any] = self.call("POST", "/api/v1/apps", {"slug": slug, "name": prefix})
        return app


@pytest.fixture(scope="module")
def live_server(
    pg_server: PgServer, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    """One server (and database) per test module; tests keep apart by their own apps."""
    name = f"picloud_b_{uuid.uuid4().hex[:16]}"
    janitor = pg_server.janitor(name, template_db)
    janitor.init()
    settings = make_test_settings(
        pg_server.url(name), tmp_path_factory.mktemp("browser"), realtime_heartbeat_sec=5.0
    )
    server = ThreadServer(settings, pg_server.url(name))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        janitor.drop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@dataclass
class JsErrors:
    """JavaScript errors a page reported: uncaught exceptions and console errors."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("console", self._console)

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error" and not msg.text.startswith(_HTTP_STATUS_LOG):
            self.errors.append(f"console.error: {msg.text}")


@pytest.fixture
def js_errors() -> JsErrors:
    return JsErrors()


@pytest.fixture
def page(browser: Browser, js_errors: JsErrors) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    js_errors.watch(page)
    yield page
    context.close()
    if js_errors.errors:
        pytest.fail("JavaScript errors on the page:\n" + "\n".join(js_errors.errors))


def sign_in(page: Page, server: ThreadServer, key: str = ADMIN_KEY) -> None:
    page.goto(server.url + "/dashboard/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#console").wait_for(state="visible")


def fits_width(page: Page) -> bool:
    """Nothing sticks out sideways (tables reflow into cards on a phone)."""
    fits: bool = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    return fits


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
