"""Host claims: which names an app key, an instance admin and psql may attach (issue 11)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from picloud.db import Row
from tests.fix_db import make_app
from tests.fix_server import Api


def add(db: psycopg.Connection[Row], app: object, host: str, admin: bool = False) -> str:
    row = db.execute("SELECT * FROM picloud.add_domain(%s, %s, %s)", (app, host, admin)).fetchone()
    assert row is not None
    return str(row["host"])


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST.",
        "b.localhost",
        "x.b.localhost",
        "127.0.0.1",
        "10.0.0.1:80",
        "0x7f000001",
        "1.2.3.4.5",
    ],
)
def test_app_key_cannot_claim_reserved_names(db: psycopg.Connection[Row], host: str) -> None:
    a = make_app(db, "a")
    with pytest.raises(errors.InsufficientPrivilege):
        add(db, a, host)
    assert db.execute("SELECT count(*) AS n FROM picloud.app_domains").fetchone() == {"n": 0}


def test_base_domain_names_follow_the_setting(db: psycopg.Connection[Row]) -> None:
    a = make_app(db, "a")
    db.execute("SET picloud.base_domain = 'apps.test'")
    for host in ["apps.test", "b.apps.test", "Deep.B.Apps.Test."]:
        with pytest.raises(errors.InsufficientPrivilege):
            add(db, a, host)
    assert add(db, a, "b.localhost.example") == "b.localhost.example"


def test_custom_domains_are_normalised(db: psycopg.Connection[Row]) -> None:
    a = make_app(db, "a")
    assert add(db, a, " Shop.Example.COM.:8443 ") == "shop.example.com"
    with pytest.raises(errors.UniqueViolation):
        add(db, make_app(db, "b"), "SHOP.example.com")
    for bad in [
        "",
        "exa mple.com",
        "a/b.com",
        "-x.com",
        "bücher.example",
        "a..b",
        "x" * 64 + ".com",
    ]:
        with pytest.raises(errors.InvalidParameterValue):
            add(db, a, bad)


def test_instance_admin_maps_reserved_but_never_another_apps_slug_host(
    db: psycopg.Connection[Row],
) -> None:
    a = make_app(db, "a")
    make_app(db, "b")
    assert add(db, a, "localhost", admin=True) == "localhost"
    assert add(db, a, "www.localhost", admin=True) == "www.localhost"
    assert add(db, a, "127.0.0.1", admin=True) == "127.0.0.1"
    for host in ["b.localhost", "B.LOCALHOST.:8080"]:
        with pytest.raises(errors.UniqueViolation):
            add(db, a, host, admin=True)
    resolved = db.execute("SELECT picloud.resolve_app('b.localhost') AS id").fetchone()
    assert resolved is not None
    assert resolved["id"] != a


async def test_app_key_http_refused_and_b_keeps_its_host(api: Api) -> None:
    a = await api.create_app("hosta")
    b = await api.create_app("hostb")
    key = await api.create_key(a["id"], "app:admin")
    path = f"/api/v1/apps/{a['id']}/domains"
    for host in ["hostb.localhost", "localhost", "127.0.0.1", "[::1]", "HostB.LocalHost."]:
        reply = await api.post(path, json={"host": host}, key=key)
        assert reply.status in (400, 403), (host, reply.raw)
        assert reply.json["error"]["code"] in ("forbidden", "invalid_input")
    assert (await api.get(path, key=key)).json["domains"] == []
    reply = await api.post(path, json={"host": "hostb.localhost"})
    assert reply.status == 409, reply.raw
    assert "another app" in reply.json["error"]["message"]
    reply = await api.post(f"/api/v1/apps/{b['id']}/domains", json={"host": "www.localhost"})
    assert reply.status == 201, reply.raw


async def test_idna_and_port_forms_over_http(api: Api) -> None:
    a = await api.create_app("idna")
    key = await api.create_key(a["id"], "app:admin")
    path = f"/api/v1/apps/{a['id']}/domains"
    reply = await api.post(path, json={"host": "Bücher.Example.:443"}, key=key)
    assert reply.status == 201, reply.raw
    assert reply.json["host"] == "xn--bcher-kva.example"
    assert (await api.post(path, json={"host": "xn--bcher-kva.example"})).status == 409
    assert (await api.post(path, json={"host": "a_b\u2028.com"}, key=key)).status == 400
    assert (await api.delete(f"{path}/B%C3%BCcher.example", key=key)).status == 204


def test_a_slug_whose_host_another_app_holds_is_refused(db: psycopg.Connection[Row]) -> None:
    a = make_app(db, "a")
    add(db, a, "later.localhost", admin=True)
    with pytest.raises(errors.UniqueViolation, match="host of another app"):
        make_app(db, "later")
    b = make_app(db, "b")
    with pytest.raises(errors.UniqueViolation):
        db.execute("UPDATE picloud.apps SET slug = 'later' WHERE id = %s", (b,))
    db.execute("UPDATE picloud.apps SET slug = 'later' WHERE id = %s", (a,))  # its own host


async def test_create_app_over_a_held_host_is_409(api: Api) -> None:
    a = await api.create_app("holder")
    assert (
        await api.post(f"/api/v1/apps/{a['id']}/domains", json={"host": "x.localhost"})
    ).status == 201
    reply = await api.post("/api/v1/apps", json={"slug": "x", "name": "x"})
    assert (reply.status, reply.error_code) == (409, "conflict"), reply.raw
