"""The aiohttp application: middlewares, routes, the pool and the background roles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiohttp import web

from picloud import logs
from picloud.db import open_pool
from picloud.roles import start_roles, stop_roles
from picloud.settings import Settings

# Importing these modules registers their routes.
from picloud.web import apps as _apps  # noqa: F401
from picloud.web import cron as _cron  # noqa: F401
from picloud.web import dashboard as _dashboard  # noqa: F401
from picloud.web import deliveries as _deliveries  # noqa: F401
from picloud.web import docs as _docs  # noqa: F401
from picloud.web import files as _files  # noqa: F401
from picloud.web import handlers as _handlers  # noqa: F401
from picloud.web import kv as _kv  # noqa: F401
from picloud.web import meta as _meta  # noqa: F401
from picloud.web import operator_stream as _operator_stream  # noqa: F401
from picloud.web import presence as _presence  # noqa: F401
from picloud.web import realtime as _realtime  # noqa: F401
from picloud.web import request_id
from picloud.web import signing_keys as _signing_keys  # noqa: F401
from picloud.web import token_publish as _token_publish  # noqa: F401
from picloud.web import topics as _topics  # noqa: F401
from picloud.web import triggers as _triggers  # noqa: F401
from picloud.web.bodies import json_body_limit
from picloud.web.errors import Handler, error_middleware
from picloud.web.routing import routes
from picloud.web.state import STATE, AppState
from picloud.web.subscriber_caps import CAPS, SubscriberCaps

PREPARED_STATUS = web.RequestKey("picloud_prepared_status", int)
CLIENT_CLOSED = 499  # nothing was sent before the client went away


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    request[PREPARED_STATUS] = response.status
    await request_id.add_header(request, response)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    metrics = request.app[STATE].metrics
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        # The client closed the connection (a stream, typically): record what it was.
        status = request.get(PREPARED_STATUS, CLIENT_CLOSED)
        metrics.http_client_closed.labels(request.method, name).inc()
        raise
    finally:
        metrics.http_requests.labels(request.method, name, str(status)).inc()
        metrics.http_seconds.labels(request.method, name).observe(time.perf_counter() - started)


def create_app(settings: Settings, conninfo: str) -> web.Application:
    """The server for ``settings`` on the database at ``conninfo`` (already migrated)."""
    app = web.Application(
        middlewares=[metrics_middleware, logs.context_middleware, error_middleware],
        client_max_size=json_body_limit(settings),
    )
    state = AppState(settings=settings, conninfo=conninfo)
    app[STATE] = state
    app[CAPS] = SubscriberCaps.of(settings)
    routes.install(app)
    app.on_response_prepare.append(on_response_prepare)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with open_pool(conninfo, settings, node_id=state.node_id) as pool:
            state.pool = pool
            state.roles = start_roles(state)
            try:
                yield
            finally:
                await stop_roles(state, state.roles)
                state.pool = None

    async def shutting_down(app: web.Application) -> None:
        # Runs before aiohttp waits for open requests: long-lived ones (SSE streams) and
        # the roles see ``stopping`` and end, so shutdown does not wait out its timeout.
        state.stopping.set()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(shutting_down)
    return app
