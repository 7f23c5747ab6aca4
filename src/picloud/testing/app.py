"""``picloud_app``: an app on ``picloud_server`` with a domain, an app-admin key and
clients bound to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from picloud.testing.server import PiCloudServer

if TYPE_CHECKING:
    from picloud_client import App, AsyncApp, AsyncPiCloud, PiCloud


@dataclass
class PiCloudApp:
    """One app: ``id``, ``slug``, ``host`` (its domain, for Host-routed subscriptions),
    ``key`` (an ``app:admin`` key), and ``client`` (a sync client bound to it)."""

    id: str
    slug: str
    host: str
    key: str
    server: PiCloudServer
    client: App
    root: PiCloud

    def async_client(self) -> AsyncPiCloud:
        """A new async client with this app's key (use it in ``async with``)."""
        from picloud_client import AsyncPiCloud

        return AsyncPiCloud(self.server.url, api_key=self.key)

    def async_app(self, client: AsyncPiCloud) -> AsyncApp:
        return client.app(self.id)


@pytest.fixture
def picloud_app(picloud_server: PiCloudServer) -> Iterator[PiCloudApp]:
    """An app on ``picloud_server``: made over HTTP with the instance admin key."""
    try:
        from picloud_client import PiCloud
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise pytest.UsageError(
            "picloud_app needs the picloud-client package (pip install picloud-client)"
        ) from exc

    slug = f"app-{uuid.uuid4().hex[:10]}"
    host = f"{slug}.test"
    with PiCloud(picloud_server.url, api_key=picloud_server.admin_key) as admin:
        info = admin.create_app(slug, name=slug)
        app = admin.app(info["id"])
        app.add_domain(host)
        key = app.create_key("picloud_app", ["app:admin"])["key"]
    root = PiCloud(picloud_server.url, api_key=key)
    try:
        yield PiCloudApp(info["id"], slug, host, key, picloud_server, root.app(info["id"]), root)
    finally:
        root.close()
