"""The server's one middleware: what every request goes through around its handler.

In one coroutine (each middleware is another call and frame per request): the request
id (picloud.web.request_id), the log context (picloud.logs: request id set, app id
cleared, both dropped at the end), the table entry of the matched route
(``request[ROUTE]``, which web/auth.py reads), the error envelope (picloud.web.errors)
and the request metrics (picloud.node.Metrics). The metric children of a route are
looked up once and kept.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import Counter

from picloud import logs
from picloud.node import Metrics
from picloud.web import request_id
from picloud.web.errors import Handler, failure_response, header_refusal
from picloud.web.routing import ROUTE, Route, Router

PREPARED_STATUS = web.RequestKey("picloud_prepared_status", int)
CLIENT_CLOSED = 499  # nothing was sent before the client went away
UNMATCHED = "unmatched"  # the route label of a request no route matched (404, 405)
# Routes (by method) whose metric children are kept; past this, looked up each time.
KEPT_ROUTES = 4096


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, streams included, names its request; the status sent is noted for
    the metrics of a request whose client goes away later."""
    request[PREPARED_STATUS] = response.status
    request_id.name_response(request, response)


class _Seen:
    """What the middleware keeps of one route and method: its table entry and metrics."""

    __slots__ = ("_closed", "_labels", "_metrics", "_statuses", "route", "seconds")

    def __init__(self, metrics: Metrics, method: str, name: str, route: Route | None) -> None:
        self.route = route
        self.seconds = metrics.http_seconds.labels(method, name)
        self._metrics = metrics
        self._labels = (method, name)
        self._statuses: dict[int, Counter] = {}
        self._closed: Counter | None = None

    def count(self, status: int) -> None:
        child = self._statuses.get(status)
        if child is None:
            child = self._metrics.http_requests.labels(*self._labels, str(status))
            self._statuses[status] = child
        child.inc()

    def client_closed(self) -> None:
        if self._closed is None:
            self._closed = self._metrics.http_client_closed.labels(*self._labels)
        self._closed.inc()


def request_middleware(metrics: Metrics) -> Middleware:
    """The middleware of a server whose request metrics are ``metrics``."""
    seen: dict[tuple[str, Any], _Seen] = {}

    def lookup(request: web.Request, method: str, route: Any) -> _Seen:
        resource = route.resource
        if resource is None:
            unmatched = seen.get((method, None))
            if unmatched is None:
                unmatched = _Seen(metrics, method, UNMATCHED, None)
                if len(seen) < KEPT_ROUTES:
                    seen[method, None] = unmatched
            return unmatched
        router = request.app.router
        entry = router.entries.get(route) if isinstance(router, Router) else None
        found = _Seen(metrics, method, resource.canonical, entry)
        if len(seen) < KEPT_ROUTES:
            seen[method, route] = found
        return found

    @web.middleware
    async def serve(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        method = request.method
        route = request.match_info.route
        # (A request no route matched has a route of its own: its entry is not kept.)
        entry = seen.get((method, route)) or lookup(request, method, route)
        if entry.route is not None:
            request[ROUTE] = entry.route
        rid = request_id.of(request)
        # Each request starts with its id and no app id (credentials() sets it), and ends
        # by dropping both.
        rid_token = logs.request_id.set(rid)
        app_token = logs.app_id.set(None)
        status = 500
        try:
            response: web.StreamResponse | None = header_refusal(request)
            if response is None:
                try:
                    response = await handler(request)
                except ConnectionResetError:
                    raise  # the client went away: nobody to answer
                except web.HTTPException as exc:
                    if exc.status < 400:
                        raise
                    response = failure_response(request, rid, exc)
                except Exception as exc:
                    response = failure_response(request, rid, exc)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            # The client closed the connection (a stream, typically): record what it was.
            status = request.get(PREPARED_STATUS, CLIENT_CLOSED)
            entry.client_closed()
            raise
        finally:
            entry.count(status)
            entry.seconds.observe(time.perf_counter() - started)
            logs.app_id.reset(app_token)
            logs.request_id.reset(rid_token)

    return serve
