"""Health, version, metrics and the OpenAPI document."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from picloud import SERVER_VERSION, VERSIONS
from picloud.web.auth import bearer_token
from picloud.web.errors import ApiError
from picloud.web.jsonio import json_response
from picloud.web.routing import openapi_document, routes
from picloud.web.state import state_of


@routes.get("/healthz", "Readiness: 503 while the database does not answer (within 1 s)", "meta")
async def healthz(request: web.Request) -> web.Response:
    pool = state_of(request).db
    if not await pool.ping():
        pool.probe_now()
        raise ApiError(503, "unavailable", "the database is unreachable")
    return json_response({"status": "ok"})


@routes.get("/livez", "Liveness of this process (whatever the database's state)", "meta")
async def livez(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/version", "Versions of the server, SDK, dashboard and client", "meta")
async def version(request: web.Request) -> web.Response:
    return json_response(VERSIONS)


@routes.get(
    "/metrics",
    "Prometheus metrics (bearer PICLOUD_METRICS_TOKEN when that is set)",
    "meta",
    response_content="text/plain; version=0.0.4",
    statuses=(401,),
)
async def metrics(request: web.Request) -> web.Response:
    state = state_of(request)
    token = state.settings.metrics_token
    if token is not None:
        offered = bearer_token(request) or ""
        if not hmac.compare_digest(offered.encode(), token.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "the metrics need the bearer token PICLOUD_METRICS_TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )
    body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/openapi.json", "This document", "meta")
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(routes, SERVER_VERSION))
