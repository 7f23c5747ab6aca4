"""The id of the request being served, for the error envelope, the X-Request-Id header
and log lines: the ContextVar of picloud.logs, so every log line of the request carries it."""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from picloud.logs import request_id as REQUEST_ID

HEADER = "X-Request-Id"
# A caller's (or proxy's) id is kept when it is short and plain; anything else is replaced.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
KEY = web.RequestKey("picloud_request_id", str)


def assign(request: web.Request) -> str:
    """Give ``request`` its id (the caller's X-Request-Id when acceptable), current in this
    task's context from now on."""
    offered = request.headers.get(HEADER, "")
    rid = offered if _ACCEPTABLE.fullmatch(offered) else uuid.uuid4().hex
    request[KEY] = rid
    REQUEST_ID.set(rid)
    return rid


def current() -> str | None:
    return REQUEST_ID.get()


async def add_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, streams included, names its request."""
    rid = request.get(KEY)
    if rid is not None:
        response.headers[HEADER] = rid
