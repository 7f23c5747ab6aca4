"""One PiCloud process: what the HTTP layer and every background role share.

A ``Node`` holds the settings, the database (its URL and the pool), the node id that
names this process among those sharing the database, the metrics registry and the
event that asks everything to stop. Background roles take a ``Node``; they never import
the HTTP layer (``picloud.web``), which builds on this module as they do.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

from picloud.db import Pool, new_node_id
from picloud.settings import Settings


@dataclass
class Metrics:
    """This process's Prometheus registry (roles add their own metrics to it) and the
    HTTP server's request metrics."""

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
class Node:
    settings: Settings
    conninfo: str
    node_id: str = field(default_factory=new_node_id)
    pool: Pool | None = None  # open while the node runs
    metrics: Metrics = field(default_factory=Metrics)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def db(self) -> Pool:
        assert self.pool is not None, "the pool opens at start-up"
        return self.pool


async def pause(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``, or less when ``stopping`` is set; True when it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()
