"""Per-node caps on live SSE subscribers: per app and per client.

The client is the peer address, or — only when the peer is a trusted proxy
(``PICLOUD_TRUSTED_PROXIES``) — the right-most ``X-Forwarded-For`` entry that is not
itself a trusted proxy (entries further left are whatever the client chose to send).
Over a cap: 429 with ``Retry-After``. Counts are this node's own.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web

from picloud.settings import Networks, Settings
from picloud.web.errors import ApiError

RETRY_AFTER_SEC = 5


def _trusted(address: str, proxies: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_of(request: web.Request, proxies: Networks) -> str:
    """Who is subscribing, for the per-client cap."""
    peer = request.remote or ""
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    hops = [h for h in hops if h]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


@dataclass
class SubscriberCaps:
    per_app: int
    per_client: int
    proxies: Networks
    apps: Counter[str] = field(default_factory=Counter)
    clients: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, settings: Settings) -> SubscriberCaps:
        return cls(
            settings.realtime_max_subscribers_per_app,
            settings.realtime_max_subscribers_per_client,
            settings.trusted_proxies,
        )

    @contextlib.contextmanager
    def slot(self, app_id: str, client: str) -> Iterator[None]:
        """Hold one subscriber slot of ``app_id`` and ``client`` for the block, or 429."""
        if self.apps[app_id] >= self.per_app:
            raise over_cap("this app has as many live subscribers as this node allows")
        if self.clients[client] >= self.per_client:
            raise over_cap("this client has as many open streams as this node allows")
        self.apps[app_id] += 1
        self.clients[client] += 1
        try:
            yield
        finally:
            for counts, key in ((self.apps, app_id), (self.clients, client)):
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]


# This node's counts, made with the application (picloud.web.app).
CAPS = web.AppKey("picloud_subscriber_caps", SubscriberCaps)


def over_cap(message: str) -> ApiError:
    return ApiError(
        429, "too_many_subscribers", message, headers={"Retry-After": str(RETRY_AFTER_SEC)}
    )


def subscriber_slot(
    request: web.Request, app_id: object
) -> contextlib.AbstractContextManager[None]:
    """The slot a new stream of ``app_id`` holds while it runs (429 when over a cap)."""
    caps = request.app[CAPS]
    return caps.slot(str(app_id), client_of(request, caps.proxies))
