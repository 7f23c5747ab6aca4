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
from aiohttp.web_urldispatcher import (
    AbstractResource,
    DynamicResource,
    MatchInfoError,
    PlainResource,
    ResourceRoute,
    UrlMappingMatchInfo,
)

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
        router = app.router
        for route in self.routes:
            added = router.add_route(route.method, route.path, route.handler)
            if isinstance(router, Router) and isinstance(added, ResourceRoute):
                router.entries[added] = route


# The single table every HTTP module registers into.
routes = RouteTable()

# The entry of the table a request matched: its declared capability is what the request's
# SQL statement asks picloud.authorize for (web/auth.py), so the capability is written once.
# The server's middleware (web/middleware.py) sets it from Router.entries.
ROUTE = web.RequestKey("picloud_route", Route)


class Router(web.UrlDispatcher):
    """aiohttp's router, resolving by path segments: the same answer, less work.

    aiohttp indexes a resource by its literal prefix up to the first placeholder, so every
    route under ``/api/v1/apps/{app_id}`` shares one bucket that it tries in order, one
    regular expression each. Once frozen, this router picks its candidates by the
    request's literal segments (a dict per shape: segment count and the positions of the
    literal segments), then checks them as aiohttp would, in aiohttp's order (longest
    index prefix first, then registration order) with each resource's own pattern. A
    router with another kind of resource (static files, sub-apps) resolves as aiohttp's.
    tests/test_router.py checks it against aiohttp's own resolution.
    """

    def __init__(self) -> None:
        super().__init__()
        # The table's entry behind each aiohttp route (RouteTable.install).
        self.entries: dict[ResourceRoute, Route] = {}
        self._shapes: dict[int, list[_Shape]] | None = None
        self._tails: list[tuple[int, _Shape]] = []

    def freeze(self) -> None:
        super().freeze()
        self._shapes = _index(self._resources, self._get_resource_index_key, self._tails)

    async def resolve(self, request: web.Request) -> UrlMappingMatchInfo:
        shapes = self._shapes
        if shapes is None:
            return await super().resolve(request)
        path = request.rel_url.path_safe
        segments = path.split("/")
        count = len(segments)
        found: list[_Candidate] = []
        for shape in shapes.get(count, ()):
            found += shape.lookup(segments)
        for least, shape in self._tails:
            if count >= least:
                found += shape.lookup(segments)
        if len(found) > 1:
            found.sort(key=_order)
        allowed: set[str] = set()
        method = request.method
        for candidate in found:
            # (A resource whose pattern matches is one aiohttp's walk over the path's
            # prefixes reaches: its index key is the path's start, up to a slash.)
            resource = candidate.resource
            match = resource._match(path)
            if match is None:
                continue
            route = resource._routes.get(method, resource._any_route)
            if route is not None:
                return UrlMappingMatchInfo(match, route)
            allowed |= resource._allowed_methods
        if allowed:
            return MatchInfoError(web.HTTPMethodNotAllowed(method, allowed))
        return MatchInfoError(web.HTTPNotFound())


@dataclass(frozen=True)
class _Candidate:
    resource: PlainResource | DynamicResource
    # aiohttp's order: longer index key (the literal prefix it files a resource under)
    # first, then registration.
    order: tuple[int, int]


def _order(candidate: _Candidate) -> tuple[int, int]:
    return candidate.order


@dataclass
class _Shape:
    """Resources whose literal segments sit at ``positions``: by those segments' text."""

    positions: tuple[int, ...]
    by_literals: dict[tuple[str, ...], list[_Candidate]] = field(default_factory=dict)

    def lookup(self, segments: list[str]) -> list[_Candidate]:
        return self.by_literals.get(tuple(segments[i] for i in self.positions), [])


_CUSTOM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*:")


def _index(
    resources: list[AbstractResource],
    index_key: Callable[[AbstractResource], str],
    tails: list[tuple[int, _Shape]],
) -> dict[int, list[_Shape]] | None:
    """The shapes of ``resources`` by segment count (and into ``tails``, those with a
    placeholder of its own pattern, which may span segments); None when a resource is of
    a kind this router does not index."""
    shapes: dict[tuple[int, tuple[int, ...]], _Shape] = {}
    tail_shapes: dict[tuple[int, tuple[int, ...]], _Shape] = {}
    for number, resource in enumerate(resources):
        if type(resource) not in (PlainResource, DynamicResource):
            return None
        assert isinstance(resource, PlainResource | DynamicResource)
        segments = resource.canonical.split("/")
        spans = -1
        if isinstance(resource, DynamicResource):
            original = resource._orig_path.split("/")
            if len(original) != len(segments):
                return None
            custom = [i for i, part in enumerate(original) if _CUSTOM.search(part)]
            spans = custom[0] if custom else -1
        fixed = segments if spans < 0 else segments[:spans]
        positions = tuple(i for i, part in enumerate(fixed) if "{" not in part)
        literals = tuple(fixed[i] for i in positions)
        key = index_key(resource)
        candidate = _Candidate(resource, (-len(key), number))
        table = shapes if spans < 0 else tail_shapes
        size = len(segments) if spans < 0 else spans + 1
        shape = table.setdefault((size, positions), _Shape(positions))
        shape.by_literals.setdefault(literals, []).append(candidate)
    by_count: dict[int, list[_Shape]] = {}
    for (size, _), shape in shapes.items():
        by_count.setdefault(size, []).append(shape)
    tails[:] = [(least, shape) for (least, _), shape in tail_shapes.items()]
    return by_count


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
