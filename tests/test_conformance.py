"""HTTP conformance: the OpenAPI document states every status and the patterns of its
inputs; cron time zones and steps are checked; /metrics takes an optional bearer token
(issue 11)."""

from __future__ import annotations

import pytest

from picloud.settings import load_settings
from tests.fix_server import Api, ServerFactory


async def test_openapi_states_statuses_and_patterns(api: Api) -> None:
    doc = (await api.get("/openapi.json")).json
    paths = doc["paths"]
    put_kv = paths["/api/v1/apps/{app_id}/kv/{key}"]["put"]["responses"]
    put_file = paths["/api/v1/apps/{app_id}/files/{path}"]["put"]["responses"]
    for responses in (put_kv, put_file):
        assert {"200", "201", "400", "401", "403", "404", "408", "413"} <= set(responses)
    assert "default" not in put_kv
    assert "304" in paths["/api/v1/apps/{app_id}/files/{path}"]["get"]["responses"]
    realtime = paths["/realtime/topics/{topic}"]["get"]["responses"]
    assert {"200", "400", "401", "404", "429"} <= set(realtime)
    assert "content" not in paths["/api/v1/apps/{app_id}/kv/{key}"]["delete"]["responses"]["204"]
    slug = paths["/api/v1/apps"]["post"]["requestBody"]["content"]["application/json"]
    assert slug["schema"]["properties"]["slug"]["pattern"].startswith("^[a-z0-9]")
    params = {
        p["name"]: p["schema"]
        for p in paths["/api/v1/apps/{app_id}/deliveries/{delivery_id}"]["get"]["parameters"]
    }
    assert params["delivery_id"]["pattern"] == "^[0-9]{1,19}$"
    assert params["app_id"]["format"] == "uuid"
    topic = paths["/api/v1/apps/{app_id}/topics"]["post"]["requestBody"]["content"]
    assert "pattern" in topic["application/json"]["schema"]["properties"]["name"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "America"),
        ("timezone", "Europe/"),
        ("timezone", "../../etc/passwd"),
        ("timezone", "Nowhere/City"),
        ("expression", "0-59/61 * * * *"),
        ("expression", "* */24 * * *"),
        ("expression", "*/0 * * * *"),
        ("expression", "* * */32 * *"),
        ("expression", "* * * */13 *"),
        ("expression", "* * * * */8"),
        ("expression", "*/" + "9" * 40 + " * * * *"),
    ],
)
async def test_cron_refuses_unreal_zones_and_steps(api: Api, field: str, value: str) -> None:
    app = await api.create_app("cronbad")
    body = {"name": "j", "expression": "*/5 * * * *", "timezone": "UTC", field: value}
    reply = await api.post(f"/api/v1/apps/{app['id']}/cron", json=body)
    assert reply.status == 400, reply.raw
    assert field in reply.json["error"]["message"]


async def test_cron_takes_real_zones_and_steps(api: Api) -> None:
    app = await api.create_app("cronok")
    body = {"name": "j", "expression": "0-59/59 */23 */31 */12 */7", "timezone": "America/New_York"}
    assert (await api.post(f"/api/v1/apps/{app['id']}/cron", json=body)).status == 201


async def test_metrics_token(server_factory: ServerFactory, http_session: object) -> None:
    assert load_settings({"PICLOUD_METRICS_TOKEN": "m-token"}).metrics_token == "m-token"
    assert load_settings({}).metrics_token is None
    server = await server_factory(metrics_token="m-token-0123")
    api = Api(http_session, server.url)  # type: ignore[arg-type]
    for key in (None, "wrong", "pck_test_admin_key_0123456789abcdef"):
        reply = await api.get("/metrics", key=key)
        assert (reply.status, reply.error_code) == (401, "unauthorized"), key
        assert reply.headers["WWW-Authenticate"] == "Bearer"
    ok = await api.get("/metrics", key="m-token-0123")
    assert ok.status == 200 and b"picloud_http_requests_total" in ok.raw


async def test_metrics_open_without_a_token(api: Api) -> None:
    assert (await api.get("/metrics", key=None)).status == 200
