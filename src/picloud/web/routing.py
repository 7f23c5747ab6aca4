"""One table of routes: what the server serves and what /openapi.json describes.

Each HTTP module declares its handlers with ``routes.<method>(path, ...)``; the app adds
every entry of the table and the OpenAPI document is built from the same entries, so a
route cannot exist without being described.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from picloud.web.errors import Handler


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    capability: str | None = None
    request_body: dict[str, Any] | None = None
    request_content: str = "application/json"
    ok_status: int = 200
    response_content: str = "application/json"
    query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    # Another success status (PUT answers 201 for a new entry, 200 for a replaced one).
    also_ok: tuple[int, ...] = ()
    # Error statuses beyond those every route of its kind may answer (see error_statuses).
    statuses: tuple[int, ...] = ()


@dataclass
class RouteTable:
    routes: list[Route] = field(default_factory=list)

    def add(
        self, method: str, path: str, summary: str, tag: str, **extra: Any
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, path, handler, summary, tag, **extra))
            return handler

        return register

    def get(self, path: str, summary: str, tag: str, **extra: Any) -> Callable[[Handler], Handler]:
        return self.add("GET", path, summary, tag, **extra)

    def post(self, path: str, summary: str, tag: str, **extra: Any) -> Callable[[Handler], Handler]:
        return self.add("POST", path, summary, tag, **extra)

    def put(self, path: str, summary: str, tag: str, **extra: Any) -> Callable[[Handler], Handler]:
        return self.add("PUT", path, summary, tag, **extra)

    def patch(
        self, path: str, summary: str, tag: str, **extra: Any
    ) -> Callable[[Handler], Handler]:
        return self.add("PATCH", path, summary, tag, **extra)

    def delete(
        self, path: str, summary: str, tag: str, **extra: Any
    ) -> Callable[[Handler], Handler]:
        return self.add("DELETE", path, summary, tag, **extra)

    def install(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, route.path, _knowing_its_route(route))


# The single table every HTTP module registers into.
routes = RouteTable()

# The entry of the table a request matched: its declared capability is what the request's
# SQL statement asks picloud.authorize for (web/auth.py), so the capability is written once.
ROUTE = web.RequestKey("picloud_route", Route)


def _knowing_its_route(route: Route) -> Handler:
    @functools.wraps(route.handler)
    async def handler(request: web.Request) -> web.StreamResponse:
        request[ROUTE] = route
        return await route.handler(request)

    return handler


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


def openapi_path(path: str) -> str:
    """aiohttp's ``{name:regex}`` placeholders as OpenAPI ``{name}``."""
    return _PARAM.sub(r"{\1}", path)


# What the inputs named alike accept, as documentation: the parsers (web/params.py) and
# the SQL CHECKs enforce them.
_ID = {"type": "string", "pattern": "^[0-9]{1,19}$"}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"}
PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "app_id": {"type": "string", "format": "uuid"},
    "handler_id": {"type": "string", "format": "uuid"},
    "trigger_id": {"type": "string", "format": "uuid"},
    "key_id": {"type": "string", "format": "uuid"},
    "delivery_id": _ID,
    "dead_letter_id": _ID,
    "name": _NAME,
    "topic": _NAME,
    "collection": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"},
    "id": {"type": "string", "pattern": "^[A-Za-z0-9_.:@=+-]{1,256}$"},
    "key": {"type": "string", "pattern": "^[A-Za-z0-9_.:/@=+-]{1,256}$"},
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    "after": {"type": "integer", "minimum": 0, "maximum": 2**62},
    "last_event_id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    "Last-Event-ID": {"type": "string", "pattern": "^[0-9]{1,19}$"},
    "If-Match": {"type": "string", "pattern": '^"?[0-9]{1,19}"?$'},
}
_NO_BODY = (204, 304, 308)


def error_statuses(route: Route) -> list[int]:
    """Every error status the route may answer: malformed input and headers (400), the
    catch-all (500) and the database (503) everywhere; keys (401/403) and unknown names
    (404) where a key or a path names something; bodies too large or too slow (413/408)."""
    statuses = {400, 500, 503, *route.statuses}
    if route.capability:
        statuses |= {401, 403, 404}
    if _PARAM.search(route.path):
        statuses.add(404)
    if route.request_body is not None:
        statuses |= {408, 413}
    if route.capability and route.method in ("POST", "PUT", "PATCH", "DELETE"):
        statuses.add(409)
    return sorted(statuses)


def _param(name: str, where: str) -> dict[str, Any]:
    schema = PARAM_SCHEMAS.get(name, {"type": "string"})
    return {"name": name, "in": where, "required": where == "path", "schema": schema}


def _success(route: Route, status: int) -> dict[str, Any]:
    if status in _NO_BODY:
        return {"description": "success"}
    return {"description": "success", "content": {route.response_content: {"schema": {}}}}


def _operation(route: Route) -> dict[str, Any]:
    params = [_param(name, "path") for name in _PARAM.findall(route.path)]
    params += [_param(name, "query") for name in route.query]
    params += [_param(name, "header") for name in route.headers]
    error = {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    responses: dict[str, Any] = {
        str(status): _success(route, status) for status in (route.ok_status, *route.also_ok)
    }
    responses |= {str(status): error for status in error_statuses(route)}
    op: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": f"{route.method.lower()}_{route.handler.__name__}",
        "responses": responses,
    }
    if params:
        op["parameters"] = params
    if route.capability:
        op["security"] = [{"apiKey": []}]
        op["x-capability"] = route.capability
    else:
        op["security"] = []
    if route.request_body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {route.request_content: {"schema": route.request_body}},
        }
    return op


def openapi_document(table: RouteTable, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in table.routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.0.3",
        "info": {"title": "PiCloud", "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
    }
