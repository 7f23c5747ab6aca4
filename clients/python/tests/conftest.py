"""Fixtures for the client's tests: every test here that touches a server runs against a
real ``picloud serve`` started by the ``picloud.testing`` plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from picloud.testing import PiCloudApp

from picloud_client import AsyncApp, AsyncPiCloud


@pytest.fixture
async def client(picloud_app: PiCloudApp) -> AsyncIterator[AsyncPiCloud]:
    async with picloud_app.async_client() as pc:
        yield pc


@pytest.fixture
def app(client: AsyncPiCloud, picloud_app: PiCloudApp) -> AsyncApp:
    return client.app(picloud_app.id)
