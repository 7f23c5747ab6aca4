"""The server's mutable state, kept in one object (aiohttp discourages mutating app[...])."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from picloud.db import Pool
from picloud.settings import Settings
from picloud.web.ratelimit import TokenBuckets

if TYPE_CHECKING:
    from picloud.web.publish_group import PublishGroups


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.http_requests = Counter(
            "picloud_http_requests",
            "HTTP requests served, by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_client_closed = Counter(
            "picloud_http_client_closed",
            "Requests (streams, mostly) the client closed before they ended",
            ["method", "route"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "picloud_http_request_seconds",
            "HTTP request duration (time to response headers for streams)",
            ["method", "route"],
            registry=self.registry,
        )


@dataclass
class AppState:
    settings: Settings
    conninfo: str
    pool: Pool | None = None
    metrics: Metrics = field(default_factory=Metrics)
    node_id: str = ""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Role objects by name (relay, dispatcher, …), for handlers that talk to them.
    roles: dict[str, Any] = field(default_factory=dict)
    # Per-token publish rate buckets (PICLOUD_TOKEN_PUBLISH_RATE), made on first use.
    token_publish_buckets: TokenBuckets | None = None
    # The node's publish group commit (picloud.web.publish_group), made on first use.
    publish_groups: PublishGroups | None = None

    @property
    def db(self) -> Pool:
        assert self.pool is not None, "the pool opens at start-up"
        return self.pool


STATE = web.AppKey("picloud_state", AppState)


def state_of(request: web.Request) -> AppState:
    return request.app[STATE]
