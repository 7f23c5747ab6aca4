"""One table of routes: what the server serves and what /openapi.json describes.

Each HTTP module declares its handlers with ``routes.<method>(path, ...)``; the app adds
every entry of the table and the OpenAPI document is built from the same entries, so a
route cannot exist without being described.
"""

from __future__ import annotations

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
            app.router.add_route(route.method, route.path, route.handler)


# The single table every HTTP module registers into.
routes = RouteTable()

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


def openapi_path(path: str) -> str:
    """aiohttp's ``{name:regex}`` placeholders as OpenAPI ``{name}``."""
    return _PARAM.sub(r"{\1}", path)


def _operation(route: Route) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in route.query
    ]
    params += [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
        for name in route.headers
    ]
    op: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": f"{route.method.lower()}_{route.handler.__name__}",
        "responses": {
            str(route.ok_status): {
                "description": "success",
                "content": {route.response_content: {"schema": {}}},
            },
            "default": {
                "description": "error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
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
