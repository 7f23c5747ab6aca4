"""The dashboard's files as the server serves them (the browser tests are in tests/browser)."""

from __future__ import annotations

import re

from picloud.web.dashboard import assets
from tests.fix_server import Api


async def test_dashboard_redirects_and_serves_its_files(api: Api) -> None:
    reply = await api.get("/dashboard", key=None)  # aiohttp follows the redirect
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    page = reply.raw.decode()
    assert "<title>PiCloud dashboard</title>" in page
    assert reply.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]

    # Every file the page and its modules load is served, with the right type.
    wanted = set(re.findall(r'(?:src|href)="([a-z]+\.(?:js|css))"', page))
    for name in ("app.js",):
        wanted |= set(re.findall(r'from "\./([a-z]+\.js)"', assets()[name].body.decode()))
    assert wanted >= {"app.js", "api.js", "ui.js", "styles.css"}
    for name in wanted:
        reply = await api.get(f"/dashboard/{name}", key=None)
        assert reply.status == 200, name
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        assert reply.headers["Content-Type"].startswith(kind)
        etag = reply.headers["ETag"]
        again = await api.get(f"/dashboard/{name}", key=None, headers={"If-None-Match": etag})
        assert again.status == 304


async def test_unknown_dashboard_files_are_404(api: Api) -> None:
    for path in ("/dashboard/nope.js", "/dashboard/__init__.py", "/dashboard/..%2fapp.py"):
        reply = await api.get(path, key=None)
        assert (reply.status, reply.error_code) == (404, "not_found"), path
