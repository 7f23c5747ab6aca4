"""Property: any JSON value the API accepts into kv, docs and publish reads back equal
(hypothesis against a real server and database) (issue 11)."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.browser.conftest import ThreadServer
from tests.fix_db import PgServer
from tests.fix_server import ADMIN_KEY, make_test_settings

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
SCALARS = (
    st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def live(
    pg_server: PgServer, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ThreadServer, str]]:
    name = f"picloud_p_{uuid.uuid4().hex[:16]}"
    janitor = pg_server.janitor(name, template_db)
    janitor.init()
    data_dir: Path = tmp_path_factory.mktemp("property")
    server = ThreadServer(make_test_settings(pg_server.url(name), data_dir), pg_server.url(name))
    server.start()
    try:
        app = server.create_app("prop")
        server.call("POST", f"/api/v1/apps/{app['id']}/topics", {"name": "t"})
        yield server, app["id"]
    finally:
        server.stop()
        janitor.drop()


def send(server: ThreadServer, method: str, path: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(server.url + path, data=orjson.dumps(body), method=method)
    req.add_header("Authorization", f"Bearer {ADMIN_KEY}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return int(resp.status), orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON, obj=st.dictionaries(TEXT, JSON, max_size=4))
def test_accepted_json_reads_back_equal(
    live: tuple[ThreadServer, str], value: Any, obj: dict[str, Any]
) -> None:
    server, app_id = live
    base = f"/api/v1/apps/{app_id}"
    status, _ = send(server, "PUT", f"{base}/kv/p", value)
    assert status < 500
    if status in (200, 201):
        assert server.call("GET", f"{base}/kv/p")["value"] == value
    else:
        assume(False)
    status, created = send(server, "POST", f"{base}/collections/c/docs", obj)
    assert status < 500
    if status == 201:
        doc = server.call("GET", f"{base}/collections/c/docs/{created['id']}")
        assert doc["data"] == obj
    status, published = send(server, "POST", f"{base}/topics/t/messages", {"message": value})
    assert status == 201
    after = published["id"] - 1
    history = server.call("GET", f"{base}/topics/t/messages?after={after}&limit=1")
    assert history["messages"][0]["message"] == value
