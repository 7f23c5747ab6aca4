"""Bearer API keys resolved to capabilities, bound to the app named in the path.

A handler passes ``credentials(request)`` to a named query that starts with
``FROM picloud.authorize(%(api_key)s, %(app_id)s, %(capability)s) a``: the key, the app and
the capability are checked in the same statement that acts (SQLSTATE 28000 -> 401,
P0002 -> 404, 42501 -> 403).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from picloud import logs
from picloud.web.errors import ApiError, forbidden, not_found, unauthorized
from picloud.web.params import path_uuid
from picloud.web.routing import ROUTE
from picloud.web.sql import fetch_one

INSTANCE_ADMIN = "instance:admin"
APP_ADMIN = "app:admin"


@dataclass(frozen=True)
class Principal:
    key_id: uuid.UUID
    app_id: uuid.UUID | None
    capabilities: frozenset[str]

    def allows(self, capability: str, app_id: uuid.UUID | None) -> bool:
        if INSTANCE_ADMIN in self.capabilities:
            return True
        if capability == INSTANCE_ADMIN or app_id is None or app_id != self.app_id:
            return False
        return APP_ADMIN in self.capabilities or capability in self.capabilities


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


async def authenticate(request: web.Request) -> Principal:
    """The caller's key, or 401."""
    token = bearer_token(request)
    if token is None:
        raise unauthorized()
    row = await fetch_one(request, "authenticate_key", {"key": token})
    if row is None:
        raise unauthorized()
    return Principal(row["id"], row["app_id"], frozenset(row["capabilities"]))


async def require_instance_admin(request: web.Request) -> Principal:
    principal = await authenticate(request)
    if not principal.allows(INSTANCE_ADMIN, None):
        raise forbidden()
    return principal


async def require_app(request: web.Request, capability: str) -> tuple[Principal, dict[str, Any]]:
    """401 without a live key, 404 for an unknown app, 403 without ``capability`` on it."""
    principal = await authenticate(request)
    app_id = path_uuid(request, "app_id")
    app = await fetch_one(request, "get_app", {"app_id": app_id})
    if app is None:
        raise not_found("no such app")
    logs.app_id.set(str(app_id))  # this request's log lines name the app (its own task)
    if not principal.allows(capability, app_id):
        raise forbidden()
    return principal, app
