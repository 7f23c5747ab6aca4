"""Reading and writing JSON bodies, with clear errors for bad input."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from picloud import jsonnum
from picloud.web.bodies import read_body
from picloud.web.errors import bad_request

jsonnum.install()


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", headers=headers
    )


async def read_json(request: web.Request) -> Any:
    """The parsed body (whatever Content-Type says); 400 when malformed, 413 when too big."""
    raw = await read_body(request)
    if not raw:
        raise bad_request("a JSON body is required", "malformed_json")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"malformed JSON: {exc}", "malformed_json") from exc
    problem = jsonnum.number_problem(raw, value)
    if problem is not None:
        raise bad_request(f"number out of range at {problem}", "number_out_of_range")
    return value


async def read_object(request: web.Request, allowed: set[str] | None = None) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    if allowed is not None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise bad_request(f"unknown field(s): {', '.join(unknown)}")
    return body


async def read_patch(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """A PATCH body: a field left out stays as it is; an explicit null is refused (no field
    of a PATCH here is nullable), rather than silently taken as "unchanged"."""
    body = await read_object(request, allowed)
    nulls = sorted(name for name, value in body.items() if value is None)
    if nulls:
        names = ", ".join(repr(n) for n in nulls)
        raise bad_request(f"{names} cannot be null; leave a field out to keep it unchanged")
    return body


def get_str(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name!r} is required")
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name!r} must be a string")
    return value


def get_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad_request(f"{name!r} must be true or false")
    return value


def get_int(
    body: dict[str, Any], name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name!r} must be an integer")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise bad_request(f"{name!r} must be between {minimum} and {maximum}")
    return value


def get_str_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{name!r} must be a list of strings")
    return list(value)
