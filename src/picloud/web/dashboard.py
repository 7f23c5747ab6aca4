"""The operator dashboard (SPEC §9): static files served from the installed package.

The dashboard is plain HTML, CSS and ES modules under ``picloud/dashboard`` — no build
step and no Node.js at run time. It signs in with an API key and talks to ``/api/v1``
like any other client.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from aiohttp import web

from picloud.web.errors import not_found
from picloud.web.routing import routes

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# The page only loads its own files and talks to its own origin.
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every servable file of the dashboard package, by name (read once)."""
    found: dict[str, Asset] = {}
    for entry in resources.files("picloud.dashboard").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if not entry.is_file() or suffix not in _TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        found[entry.name] = Asset(body, _TYPES[suffix], etag)
    return found


def _serve(request: web.Request, name: str) -> web.Response:
    asset = assets().get(name)
    if asset is None:
        raise not_found(f"no dashboard file {name!r}")
    headers = {**_HEADERS, "ETag": asset.etag}
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


@routes.get("/dashboard", "Redirect to the dashboard", "dashboard", ok_status=308)
async def dashboard_redirect(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/dashboard/")


@routes.get("/dashboard/", "The operator dashboard", "dashboard", response_content="text/html")
async def dashboard_index(request: web.Request) -> web.Response:
    return _serve(request, "index.html")


@routes.get(
    "/dashboard/{asset:[A-Za-z0-9_-]+\\.(?:js|css|svg)}",
    "A dashboard script, style sheet or image",
    "dashboard",
    response_content="text/javascript",
)
async def dashboard_asset(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["asset"])
