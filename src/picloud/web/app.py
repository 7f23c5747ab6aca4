"""The aiohttp application: its router and middleware, routes, the pool and the background
roles."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

from aiohttp import web

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
from picloud.web import signing_keys as _signing_keys  # noqa: F401
from picloud.web import token_publish as _token_publish  # noqa: F401
from picloud.web import topics as _topics  # noqa: F401
from picloud.web import triggers as _triggers  # noqa: F401
from picloud.web.bodies import json_body_limit
from picloud.web.middleware import on_response_prepare, request_middleware
from picloud.web.routing import Router, routes
from picloud.web.state import STATE, AppState
from picloud.web.subscriber_caps import CAPS, SubscriberCaps


def create_app(settings: Settings, conninfo: str) -> web.Application:
    """The server for ``settings`` on the database at ``conninfo`` (already migrated)."""
    state = AppState(settings=settings, conninfo=conninfo)
    with warnings.catch_warnings():
        # aiohttp calls its router argument deprecated, but offers no other way in.
        warnings.filterwarnings("ignore", "router argument", DeprecationWarning)
        app = web.Application(
            router=Router(),
            middlewares=[request_middleware(state.metrics)],
            client_max_size=json_body_limit(settings),
        )
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
