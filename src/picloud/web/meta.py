"""Health, version, metrics and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from picloud import SERVER_VERSION, VERSIONS
from picloud.web.jsonio import json_response
from picloud.web.routing import openapi_document, routes
from picloud.web.sql import fetch_one
from picloud.web.state import state_of


@routes.get("/healthz", "Liveness and database reachability", "meta")
async def healthz(request: web.Request) -> web.Response:
    await fetch_one(request, "ping", {})
    return json_response({"status": "ok"})


@routes.get("/version", "Versions of the server, SDK, dashboard and client", "meta")
async def version(request: web.Request) -> web.Response:
    return json_response(VERSIONS)


@routes.get("/metrics", "Prometheus metrics", "meta", response_content="text/plain; version=0.0.4")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(state_of(request).metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/openapi.json", "This document", "meta")
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(routes, SERVER_VERSION))
