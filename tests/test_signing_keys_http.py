"""HTTP: the signing key's status and its rotation (app:admin), never the key bytes."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.fix_server import Api, Server
from tests.test_realtime_sse import Realtime


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_rotation_route(api: Api, server: Server) -> None:
    rt = await Realtime.create(api, server, "keys")
    await rt.topic("room", auth_mode="token")
    base = f"/api/v1/apps/{rt.app['id']}/signing-keys"
    fresh = await api.get(base)
    assert fresh.status == 200
    assert fresh.json == dict.fromkeys(
        ("key_version", "created_at", "rotated_at", "previous_valid_until")
    )

    old = await rt.token("room")
    status = (await api.get(base)).json
    assert status["key_version"] == 1 and status["rotated_at"] is None

    rotated = await api.post(f"{base}/rotate", json={"grace_seconds": 600})
    assert rotated.status == 200, rotated.raw
    assert set(rotated.json) == {"key_version", "rotated_at", "previous_valid_until"}
    assert rotated.json["key_version"] == 2
    grace = at(rotated.json["previous_valid_until"]) - at(rotated.json["rotated_at"])
    assert grace == timedelta(seconds=600)
    status = (await api.get(base)).json
    assert status["key_version"] == 2
    assert status["rotated_at"] is not None
    assert at(status["previous_valid_until"]) == at(rotated.json["previous_valid_until"])
    assert not any("key" in k and k != "key_version" for k in status), "no key bytes"
    assert (await rt.subscribe("room", token=old)).status == 200, "within the grace"

    # No grace: the previous key stops at once; an empty body takes the default hour.
    assert (await api.post(f"{base}/rotate", json={"grace_seconds": 0})).json["key_version"] == 3
    assert (await rt.subscribe("room", token=old)).status == 401
    default = await api.post(f"{base}/rotate", data=b"")
    assert default.status == 200 and default.json["key_version"] == 4
    assert at(default.json["previous_valid_until"]) - at(default.json["rotated_at"]) == timedelta(
        hours=1
    )


async def test_rotation_bad_input_and_capabilities(api: Api, server: Server) -> None:
    app = await api.create_app("keys2")
    base = f"/api/v1/apps/{app['id']}/signing-keys"
    for body in (
        {"grace_seconds": -1},
        {"grace_seconds": "60"},
        {"grace_seconds": 1.5},
        {"grace_seconds": 31 * 86400},
        {"grace": 60},
        [60],
    ):
        reply = await api.post(f"{base}/rotate", json=body)
        assert reply.status == 400, (body, reply.raw)
    assert (await api.post(f"{base}/rotate", data=b"{bad")).status == 400
    assert (await api.get(base)).json["key_version"] is None, "nothing rotated"
    minter = await api.create_key(app["id"], "tokens:mint", "topics:manage")
    admin = await api.create_key(app["id"], "app:admin")
    assert (await api.get(base, key=minter)).status == 403
    assert (await api.post(f"{base}/rotate", json={}, key=minter)).status == 403
    assert (await api.post(f"{base}/rotate", json={}, key=None)).status == 401
    assert (await api.post(f"{base}/rotate", json={}, key=admin)).json["key_version"] == 2
    missing = "/api/v1/apps/00000000-0000-0000-0000-000000000000/signing-keys"
    assert (await api.get(missing)).status == 404
    assert (await api.post(f"{missing}/rotate", json={})).status == 404
    assert (await api.get("/api/v1/apps/nope/signing-keys")).status == 404
