"""The id of the request being served, for the error envelope, the X-Request-Id header
and log lines: the ContextVar of picloud.logs, so every log line of the request carries it."""

from __future__ import annotations

import os
import random
import re

from aiohttp import web

from picloud.logs import request_id as REQUEST_ID

HEADER = "X-Request-Id"
# A caller's (or proxy's) id is kept when it is short and plain; anything else is replaced.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
KEY = web.RequestKey("picloud_request_id", str)

# An id of our own: 128 random bits as 32 hex digits, the form of a uuid4's hex. They name
# a request in logs and answers and are no secret, so a PRNG of its own (seeded from the
# OS, again in a forked child; not the module's, which tests seed) serves, at a fraction
# of uuid4's cost (which reads os.urandom and builds a UUID on every request).
_random = random.Random()
_bits = _random.getrandbits
os.register_at_fork(after_in_child=_random.seed)


def new() -> str:
    return f"{_bits(128):032x}"


def of(request: web.Request) -> str:
    """Give ``request`` its id (the caller's X-Request-Id when acceptable): kept with the
    request; the server's middleware makes it current in the request's context."""
    offered = request.headers.get(HEADER)
    rid = offered if offered and _ACCEPTABLE.fullmatch(offered) else new()
    request[KEY] = rid
    return rid


def current() -> str | None:
    return REQUEST_ID.get()


def name_response(request: web.Request, response: web.StreamResponse) -> None:
    """The response names its request (X-Request-Id), when the request has an id."""
    rid = request.get(KEY)
    if rid is not None:
        response.headers[HEADER] = rid


async def add_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, streams included, names its request."""
    name_response(request, response)
