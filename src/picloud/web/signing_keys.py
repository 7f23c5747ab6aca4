"""An app's subscriber-token signing key over HTTP: its status, and rotation (app:admin).

Never the key bytes: ``GET`` shows the current version, when the key was created and last
rotated, and until when the previous key still verifies tokens (its grace end).
``POST …/rotate`` runs ``picloud.rotate_app_secret`` and answers the new version,
rotated_at and the grace end: tokens signed by the previous key stay valid for
``grace_seconds`` (default 3600), older ones stop at once.
"""

from __future__ import annotations

from aiohttp import web

from picloud.web.auth import APP_ADMIN, credentials
from picloud.web.bodies import read_body
from picloud.web.jsonio import get_int, json_response, read_object
from picloud.web.routing import routes
from picloud.web.sql import fetch_one
from picloud.web.topics import TOKEN_TTL_MAX_SEC

BASE = "/api/v1/apps/{app_id}/signing-keys"
STATUS_FIELDS = ("key_version", "created_at", "rotated_at", "previous_valid_until")


@routes.get(
    BASE, "The token signing key's version and rotation times", "apps", capability=APP_ADMIN
)
async def signing_key_status(request: web.Request) -> web.Response:
    row = await fetch_one(request, "signing_key_status", credentials(request))
    assert row is not None  # picloud.authorize's row; every field null before the first mint
    return json_response({f: row[f] for f in STATUS_FIELDS})


@routes.post(
    BASE + "/rotate",
    "Rotate the token signing key (the previous key stays valid for grace_seconds)",
    "apps",
    capability=APP_ADMIN,
    request_body={
        "type": "object",
        "properties": {
            "grace_seconds": {"type": "integer", "minimum": 0, "maximum": TOKEN_TTL_MAX_SEC}
        },
    },
)
async def rotate_signing_key(request: web.Request) -> web.Response:
    raw = await read_body(request)
    body = await read_object(request, {"grace_seconds"}) if raw.strip() else {}
    # The bounds (0 to the longest token life) and the default are picloud.rotate_signing_key's.
    params = {**credentials(request), "grace_seconds": get_int(body, "grace_seconds")}
    row = await fetch_one(request, "rotate_signing_key", params)
    assert row is not None
    return json_response({f: row[f] for f in STATUS_FIELDS[:1] + STATUS_FIELDS[2:]})
