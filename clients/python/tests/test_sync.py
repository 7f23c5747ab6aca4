"""The blocking client: the same calls without an event loop, errors raised in the
caller's thread, files streamed from and to local paths."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from picloud.testing import PiCloudApp

from picloud_client import Message, NotFound, PiCloud, VersionConflict


def test_blocking_calls_and_errors(picloud_app: PiCloudApp, tmp_path: Path) -> None:
    app = picloud_app.client
    assert app.get()["slug"] == picloud_app.slug
    app.create_topic("t")
    assert app.publish("t", {"a": 1})["id"] == 1
    assert [m.message for m in app.history("t")] == [{"a": 1}]
    app.kv_set("k", [1, 2])
    assert app.kv_get("k", validate=tuple) == (1, 2)
    doc = app.create_doc("c", {"v": 1})
    with pytest.raises(VersionConflict):
        app.put_doc("c", doc["id"], {"v": 2}, if_match=7)
    with pytest.raises(NotFound):
        app.get_topic("missing")

    source = tmp_path / "in.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    info = app.upload("blob.bin", source)
    assert info["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    target = tmp_path / "out.bin"
    assert app.download("blob.bin", target) == 256_000
    assert target.read_bytes() == source.read_bytes()
    with open(source, "rb") as handle:
        assert app.upload("blob2.bin", handle)["size"] == 256_000


def test_one_client_from_several_threads(picloud_app: PiCloudApp) -> None:
    picloud_app.client.create_topic("t")
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            for _ in range(10):
                picloud_app.client.publish("t", "x")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = [m.id for m in picloud_app.client.history("t", limit=100)]
    assert ids == list(range(1, 41))


def test_close_is_idempotent(picloud_app: PiCloudApp) -> None:
    picloud_app.client.create_topic("t", external_subscribable=True, auth_mode="public")
    picloud_app.client.publish("t", 1)
    pc = PiCloud(picloud_app.server.url)
    sub = pc.subscribe(picloud_app.host, "t", last_event_id=0)
    first = next(sub)
    assert isinstance(first, Message)
    assert first.id == 1
    pc.close()  # closes the open stream with the client
    pc.close()
    sub.close()


def test_sync_subscribe_with_a_sync_get_token(picloud_app: PiCloudApp) -> None:
    app = picloud_app.client
    app.create_topic("private", external_subscribable=True, auth_mode="token")
    app.publish("private", "hello")
    calls: list[int] = []

    def get_token() -> str:
        calls.append(1)
        return app.mint_token("private", ttl_seconds=60)["token"]

    # get_token runs on the client's own loop thread; it may call another client.
    with (
        PiCloud(picloud_app.server.url) as pc,
        pc.subscribe(picloud_app.host, "private", get_token=get_token, last_event_id=0) as sub,
    ):
        first = next(sub)
    assert isinstance(first, Message)
    assert first.message == "hello"
    assert calls == [1]


def test_a_get_token_calling_its_own_client_fails_instead_of_hanging(
    picloud_app: PiCloudApp,
) -> None:
    picloud_app.client.create_topic("private", external_subscribable=True)
    with PiCloud(picloud_app.server.url, api_key=picloud_app.key) as pc:
        own = pc.app(picloud_app.id)
        sub = pc.subscribe(
            picloud_app.host, "private", get_token=lambda: own.mint_token("private")["token"]
        )
        with pytest.raises(RuntimeError, match="would wait for itself"):
            next(sub)
