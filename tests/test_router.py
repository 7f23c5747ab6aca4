"""The server's router (picloud.web.routing.Router) resolves every request exactly as
aiohttp's own router does: the same route and path parameters, the same 404 and 405
(with the same allowed methods)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from picloud.settings import Settings
from picloud.web.app import create_app
from picloud.web.routing import Router, routes

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
APP = str(uuid.UUID(int=7))
# What a path parameter may be: plain, %-encoded slash or percent, dots, non-ASCII, braces.
SAMPLES = ("x1", "a%2Fb", "100%25", "app.js", "é", "%7Bz%7D", "t:1")


@pytest.fixture(scope="module")
def routers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Router, web.UrlDispatcher]:
    data = Path(tmp_path_factory.mktemp("router"))
    settings = Settings(database_url="postgresql://unused", data_dir=data, files_root=data)
    ours = create_app(settings, "postgresql://unused")
    theirs = web.Application()
    routes.install(theirs)
    for app in (ours, theirs):
        app.router.freeze()
    assert isinstance(ours.router, Router)
    assert ours.router._shapes is not None, "the server's routes are all indexed"
    return ours.router, theirs.router


def resolution(match: Any) -> tuple[Any, ...]:
    """What a resolution decides: the route (method, handler, path) and its parameters, or
    the error's status and allowed methods."""
    if match.http_exception is not None:
        exc = match.http_exception
        return (exc.status, tuple(sorted(getattr(exc, "allowed_methods", ()))))
    route = match.route
    return (route.method, route.handler, route.resource.canonical, dict(match))


async def assert_same(routers: tuple[Router, web.UrlDispatcher], method: str, path: str) -> None:
    ours, theirs = routers
    mine = await ours.resolve(make_mocked_request(method, path))
    reference = await theirs.resolve(make_mocked_request(method, path))
    assert resolution(mine) == resolution(reference), (method, path)


def table_paths() -> list[str]:
    """Each route's path with its parameters filled in, several ways."""
    paths = []
    for route in routes.routes:
        for sample in SAMPLES:
            filled = route.path.replace("{app_id}", APP)
            while "{" in filled:
                start = filled.index("{")
                filled = filled[:start] + sample + filled[filled.index("}", start) + 1 :]
            paths += [filled, filled + "/", filled + "/more"]
    paths += [p.replace(APP, "not-a-uuid") for p in paths]
    return sorted(set(paths))


# Near misses: prefixes, extra and empty segments, a wrong case, an asset of another kind.
MISSES = [
    "/",
    "//",
    "/api",
    "/api/v1",
    "/api/v1/",
    "/api/v1/apps/",
    "/api//v1/apps",
    f"/api/v1/apps/{APP}/",
    f"/api/v1/apps/{APP}//kv",
    f"/api/v1/apps/{APP}/kv/",
    f"/api/v1/apps/{APP}/kv//x",
    f"/api/v1/apps/{APP}/KV/x",
    f"/api/v1/apps/{APP}/nothing",
    f"/api/v1/apps/{APP}/collections/c/docs/d/extra",
    f"/api/v1/apps/{APP}/topics/t/messages/x",
    "/dashboard/logo.png",
    "/dashboard/a/b.js",
    "/dashboard/.js",
    "/dashboard//",
    "/healthz/",
    "/HEALTHZ",
    "/realtime/",
    "/realtime/topics",
    "/realtime/topics/",
    "/metrics/x",
]


async def test_every_route_resolves_as_aiohttp_does(
    routers: tuple[Router, web.UrlDispatcher],
) -> None:
    paths = table_paths()
    assert len(paths) > 300
    for path in [*paths, *MISSES]:
        for method in METHODS:
            await assert_same(routers, method, path)


async def test_each_route_of_the_table_is_found(
    routers: tuple[Router, web.UrlDispatcher],
) -> None:
    ours, _ = routers
    for route in routes.routes:
        path = route.path.replace("{app_id}", APP)
        while "{" in path:
            start = path.index("{")
            path = path[:start] + "app.js" + path[path.index("}", start) + 1 :]
        match = await ours.resolve(make_mocked_request(route.method, path))
        assert match.http_exception is None, (route.method, route.path)
        assert ours.entries[match.route] is route  # (what the middleware sets as ROUTE)


# Paths made of the table's own words, parameter-like text and odd segments.
_WORDS = sorted({part for r in routes.routes for part in r.path.split("/") if "{" not in part})
_SEGMENT = st.one_of(
    st.sampled_from(_WORDS),
    st.sampled_from([APP, "", "x", "a.css", "%2F", "é", "{", "a}b"]),
    st.text("ab.-_%2F", max_size=4),
)


@settings(max_examples=400, deadline=None)
@given(segments=st.lists(_SEGMENT, min_size=1, max_size=9), method=st.sampled_from(METHODS))
async def test_random_paths_resolve_as_aiohttp_does(
    routers: tuple[Router, web.UrlDispatcher], segments: list[str], method: str
) -> None:
    await assert_same(routers, method, "/" + "/".join(segments))


# Overlapping routes, registered out of order: which one wins is aiohttp's order (longest
# literal prefix first, then registration), which the router must keep.
OVERLAPPING = [
    ("GET", "/a/{x}"),
    ("POST", "/a/b"),
    ("GET", "/a/{x}/c"),
    ("PUT", "/a/b/{y}"),
    ("GET", "/{z}/b"),
    ("GET", "/a/{rest:.*}"),
    ("DELETE", "/a/b"),
    ("GET", "/a/{x}.json"),
    ("PATCH", "/{z}/{w}/c"),
    ("GET", "/a/b/{y}"),
    ("GET", "/"),
    ("GET", "/a/"),
    ("POST", "/{any:.+}"),
]


def overlapping_routers() -> tuple[Router, web.UrlDispatcher]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    ours, theirs = Router(), web.UrlDispatcher()
    for router in (ours, theirs):
        for method, path in OVERLAPPING:
            router.add_route(method, path, handler)
        router.freeze()
    assert ours._shapes is not None
    return ours, theirs


@settings(max_examples=400, deadline=None)
@given(
    segments=st.lists(st.sampled_from(["a", "b", "c", "x.json", "", "z"]), max_size=5),
    method=st.sampled_from(METHODS),
)
async def test_overlapping_routes_resolve_in_aiohttps_order(
    segments: list[str], method: str
) -> None:
    await assert_same(overlapping_routers(), method, "/" + "/".join(segments))


def test_a_router_with_another_kind_of_resource_resolves_as_aiohttp(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    router = Router()
    router.add_get("/a/{x}", handler)
    router.add_static("/files", tmp_path)
    router.freeze()
    assert router._shapes is None
