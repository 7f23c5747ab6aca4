"""Bearer API keys resolved to capabilities, bound to the app named in the path."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from picloud import logs
from picloud.web.errors import forbidden, not_found, unauthorized
from picloud.web.params import path_uuid
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
