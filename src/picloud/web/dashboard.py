"""The operator dashboard (SPEC §9): static files served from the installed package, and
the API-key stream its live tail follows.

The dashboard is plain HTML, CSS and ES modules under ``picloud/dashboard`` — no build
step and no Node.js at run time. It signs in with an API key and talks to ``/api/v1``
like any other client.

The live tail cannot use ``/realtime/topics/{topic}``: that route finds the app by the
``Host`` header (the app's own host name, which the dashboard's origin is not, and which
``EventSource``/``fetch`` cannot set) and serves only external topics. So
``GET /api/v1/apps/{app_id}/topics/{name}/stream`` serves the same SSE stream, on the
same relay subscription machinery, to an API key with ``topics:manage`` on the app, for
any of its topics; the dashboard reads it with streaming ``fetch`` (the key goes in the
``Authorization`` header, never in a URL) and resumes with ``Last-Event-ID``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from aiohttp import web

from picloud.web.auth import credentials
from picloud.web.errors import not_found
from picloud.web.params import last_event_id
from picloud.web.realtime import serve_stream
from picloud.web.routing import routes
from picloud.web.sql import fetch_one

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


@routes.get(
    "/dashboard/",
    "The operator dashboard",
    "dashboard",
    response_content="text/html",
    also_ok=(304,),
)
async def dashboard_index(request: web.Request) -> web.Response:
    return _serve(request, "index.html")


@routes.get(
    "/dashboard/{asset:[A-Za-z0-9_-]+\\.(?:js|css|svg)}",
    "A dashboard script, style sheet or image",
    "dashboard",
    response_content="text/javascript",
    also_ok=(304,),
)
async def dashboard_asset(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["asset"])


@routes.get(
    "/api/v1/apps/{app_id}/topics/{name}/stream",
    "Follow a topic over Server-Sent Events with an API key (the dashboard's live tail)",
    "topics",
    capability="topics:manage",
    query=("last_event_id",),
    headers=("Last-Event-ID",),
    response_content="text/event-stream",
)
async def stream_topic(request: web.Request) -> web.StreamResponse:
    topic = request.match_info["name"]
    resume = last_event_id(request)
    params = {**credentials(request), "topic": topic}
    row = await fetch_one(request, "topic_stream_position", params)
    if row is None:
        raise not_found("no such topic")
    return await serve_stream(
        request,
        row["app_id"],
        topic,
        row["epoch"],
        row["head"],
        row["oldest"],
        resume,
        blockers=row["blockers"],
        operator=True,
        presence=row["presence"],
    )
