"""Every control-plane call of the async client against a real server."""

from __future__ import annotations

import hashlib
import io

import psycopg
import pytest
from picloud.testing import PiCloudApp, PiCloudServer, wait_for_delivery

from picloud_client import (
    AsyncApp,
    AsyncPiCloud,
    BadRequest,
    Conflict,
    Message,
    NotFound,
    Unauthorized,
)


async def test_instance_calls(picloud_server: PiCloudServer) -> None:
    async with AsyncPiCloud(picloud_server.url, api_key=picloud_server.admin_key) as pc:
        assert (await pc.health())["status"] == "ok"
        assert (await pc.version())["client"] == "1.0.0"
        made = await pc.create_app("shop", name="The shop")
        assert (made["slug"], made["name"]) == ("shop", "The shop")
        assert made["id"] in [a["id"] for a in await pc.list_apps()]
        app = pc.app(made["id"])
        assert (await app.get())["slug"] == "shop"
        assert (await app.update(name="Shop 2"))["name"] == "Shop 2"
        await app.delete()
        with pytest.raises(NotFound):
            await app.get()


async def test_domains_and_keys(app: AsyncApp, picloud_app: PiCloudApp) -> None:
    assert (await app.add_domain("Shop.Example.com"))["host"] == "shop.example.com"
    hosts = {d["host"] for d in await app.list_domains()}
    assert hosts == {picloud_app.host, "shop.example.com"}
    await app.remove_domain("shop.example.com")
    assert {d["host"] for d in await app.list_domains()} == {picloud_app.host}

    made = await app.create_key("reader", ["kv:read"])
    assert made["key"].startswith("pck_") and made["capabilities"] == ["kv:read"]
    listed = {k["id"]: k for k in await app.list_keys()}
    assert "key" not in listed[made["id"]]  # the secret is shown once only
    await app.revoke_key(made["id"])
    revoked = {k["id"]: k for k in await app.list_keys()}[made["id"]]
    assert revoked["revoked_at"] is not None


async def test_topics_publish_history_tokens(app: AsyncApp, picloud_app: PiCloudApp) -> None:
    host = picloud_app.host
    topic = await app.create_topic("news", external_subscribable=True, auth_mode="public")
    assert (topic["name"], topic["external_subscribable"], topic["auth_mode"]) == (
        "news",
        True,
        "public",
    )
    assert topic["presence"] is False
    assert [t["name"] for t in await app.list_topics()] == ["news"]
    room = await app.create_topic("room", presence=True)
    assert (room["name"], room["presence"]) == ("room", True)
    assert (await app.get_topic("room"))["presence"] is True
    await app.delete_topic("room")
    assert (await app.update_topic("news", auth_mode="token"))["auth_mode"] == "token"
    assert (await app.get_topic("news"))["auth_mode"] == "token"

    ids = [(await app.publish("news", {"n": n}))["id"] for n in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    history = await app.history("news", after=2, limit=2)
    assert [(m.id, m.topic, m.message) for m in history] == [
        (3, "news", {"n": 2}),
        (4, "news", {"n": 3}),
    ]
    assert all(isinstance(m, Message) and m.published_at for m in history)

    token = await app.mint_token("news", ttl_seconds=60)
    assert token["token"] and token["expires_at"]

    batch = await app.publish_batch("news", [{"n": 5}, {"n": 6}, {"n": 7}])
    assert batch["ids"] == [6, 7, 8] and batch["published_at"]
    with pytest.raises(BadRequest, match="message 1"):  # all or nothing
        await app.publish_batch("news", ["ok", "nul\x00"])
    assert [m.id for m in await app.history("news", after=5)] == [6, 7, 8]

    # A token that may publish: its messages say who sent them.
    writer = await app.mint_token("news", publish=True, subject="ada")
    reader = await app.mint_token("news")  # no publish grant
    async with AsyncPiCloud(app.client.base_url) as anonymous:
        sent = await anonymous.publish_with_token(host, "news", "hi", token=writer["token"])
        assert sent["id"] == 9 and sent["published_at"]
        with pytest.raises(Unauthorized):
            await anonymous.publish_with_token(host, "news", "no", token=reader["token"])
    [last] = await app.history("news", after=8)
    assert (last.id, last.message) == (9, "hi")

    await app.delete_topic("news")
    with pytest.raises(NotFound):
        await app.get_topic("news")


async def test_kv(app: AsyncApp) -> None:
    entry = await app.kv_set("users/1", {"name": "ada"})
    assert (entry["key"], entry["value"]) == ("users/1", {"name": "ada"})
    await app.kv_set("users/2", [1, 2])
    await app.kv_set("other", "x")
    assert await app.kv_get("users/1") == {"name": "ada"}
    page = await app.kv_list(prefix="users/", limit=1)
    assert [e["key"] for e in page["items"]] == ["users/1"]
    assert page["next_cursor"] is not None
    rest = await app.kv_list(prefix="users/", cursor=page["next_cursor"])
    assert [e["key"] for e in rest["items"]] == ["users/2"]
    await app.kv_delete("users/1")
    with pytest.raises(NotFound):
        await app.kv_get("users/1")


async def test_documents(app: AsyncApp) -> None:
    doc = await app.create_doc("orders", {"total": 3})
    assert doc["version"] == 1 and doc["data"] == {"total": 3}
    assert (await app.get_doc("orders", doc["id"]))["data"] == {"total": 3}
    updated = await app.put_doc("orders", doc["id"], {"total": 4}, if_match=1)
    assert updated["version"] == 2
    named = await app.put_doc("orders", "o-2", {"total": 9})
    assert named["id"] == "o-2"
    page = await app.list_docs("orders")
    assert sorted(d["id"] for d in page["items"]) == sorted([doc["id"], "o-2"])
    await app.delete_doc("orders", doc["id"], if_match=2)
    await app.delete_doc("orders", "o-2")
    assert (await app.list_docs("orders"))["items"] == []


async def test_files_small(app: AsyncApp) -> None:
    data = b"hello, files"
    info = await app.upload("docs/readme.txt", data, content_type="text/plain")
    assert info["size"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["content_type"] == "text/plain"
    empty = await app.upload("docs/empty", iter([]))
    assert empty["size"] == 0
    async with app.open_file("docs/readme.txt") as response:
        assert response.headers["content-type"] == "text/plain"
        assert b"".join([c async for c in response.aiter_bytes()]) == data
    listed = await app.list_files(prefix="docs/")
    assert [f["path"] for f in listed["items"]] == ["docs/empty", "docs/readme.txt"]
    await app.delete_file("docs/readme.txt")
    with pytest.raises(NotFound):
        await app.download("docs/readme.txt", io.BytesIO())


async def test_cron(app: AsyncApp) -> None:
    job = await app.create_cron("nightly", "0 3 * * *", timezone="Europe/Paris", payload={"a": 1})
    assert (job["name"], job["expression"], job["timezone"]) == (
        "nightly",
        "0 3 * * *",
        "Europe/Paris",
    )
    assert [j["name"] for j in await app.list_cron()] == ["nightly"]
    assert (await app.update_cron("nightly", enabled=False))["enabled"] is False
    assert (await app.get_cron("nightly"))["enabled"] is False
    await app.delete_cron("nightly")
    assert await app.list_cron() == []


async def test_handlers_triggers_deliveries_dead_letters(
    app: AsyncApp, picloud_app: PiCloudApp, picloud_db: psycopg.Connection[dict[str, object]]
) -> None:
    handler = await app.create_handler(
        "hook", "webhook", url="http://127.0.0.1:9/unreachable", timeout_ms=500
    )
    assert handler["kind"] == "webhook"
    assert [h["id"] for h in await app.list_handlers()] == [handler["id"]]
    assert (await app.get_handler(handler["id"]))["name"] == "hook"
    assert (await app.update_handler(handler["id"], name="hook2"))["name"] == "hook2"

    trigger = await app.create_trigger(
        "on-kv", "kv", handler["id"], filter={"match": "jobs/*"}, max_attempts=1
    )
    assert trigger["source"] == "kv"
    assert [t["id"] for t in await app.list_triggers()] == [trigger["id"]]
    assert (await app.get_trigger(trigger["id"]))["name"] == "on-kv"
    assert (await app.update_trigger(trigger["id"], name="on-jobs"))["name"] == "on-jobs"

    await app.kv_set("jobs/1", {"run": True})
    # The webhook's port refuses, max_attempts is 1: the delivery dies.
    dead = wait_for_delivery(picloud_db, picloud_app, status="dead", subject="jobs/1")
    deliveries = await app.list_deliveries(source="kv")
    assert [d["id"] for d in deliveries] == [dead["id"]]
    assert (await app.get_delivery(dead["id"]))["status"] == "dead"

    letters = await app.list_dead_letters(source="kv")
    assert len(letters) == 1
    letter = await app.get_dead_letter(letters[0]["id"])
    assert letter["id"] == letters[0]["id"]
    assert (await app.retry_dead_letters(source="kv", dry_run=True))["matching"] == 1
    fresh = await app.retry_dead_letter(letter["id"])
    assert fresh != dead["id"]
    assert fresh in [d["id"] for d in await app.list_deliveries()]
    with pytest.raises(Conflict) as again:  # retried once only, unless forced
        await app.retry_dead_letter(letter["id"])
    assert (again.value.status, again.value.code) == (409, "already_retried")
    assert await app.retry_dead_letter(letter["id"], force=True) not in (fresh, dead["id"])
    await app.discard_dead_letter(letter["id"])
    with pytest.raises(NotFound):
        await app.get_dead_letter(letter["id"])

    await app.delete_trigger(trigger["id"])
    await app.delete_handler(handler["id"])
    assert await app.list_handlers() == []
