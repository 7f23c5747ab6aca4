"""Bearer API keys resolved to capabilities, bound to the app named in the path.

A handler passes ``credentials(request)`` to a named query that starts with
``FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a``: the key, the app and
the capability are checked in the same statement that acts (SQLSTATE 28000 -> 401,
P0002 -> 404, 42501 -> 403).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from picloud import logs
from picloud.web.errors import ApiError
from picloud.web.params import path_uuid
from picloud.web.routing import ROUTE

APP_ADMIN = "app:admin"


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# A path's app id that is not a uuid names no app: authorize() answers it like an unknown
# one (after the key check, so a request without a key is still 401).
_NO_APP = uuid.UUID(int=0)


def credentials(request: web.Request) -> dict[str, Any]:
    """picloud.authorize's parameters for this request: the bearer key (None: 401 from
    SQL), the app named in the path (None on instance-level routes) and the capability
    the matched route declares."""
    app_id: uuid.UUID | None = None
    if "app_id" in request.match_info:
        try:
            app_id = path_uuid(request, "app_id")
        except ApiError:
            app_id = _NO_APP
        logs.app_id.set(str(app_id))  # this request's log lines name the app (its own task)
    return {
        "api_key": bearer_token(request),
        "app_id": app_id,
        "capability": request[ROUTE].capability,
    }
