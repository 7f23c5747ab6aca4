"""The server's state: the node, its background roles and what only the HTTP layer keeps,
in one object (aiohttp discourages mutating app[...])."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from picloud.files.store import BlobStore
from picloud.node import Metrics, Node
from picloud.roles import Roles
from picloud.web.ratelimit import TokenBuckets

__all__ = ["STATE", "AppState", "Metrics", "state_of"]


@dataclass
class AppState(Node):
    roles: Roles = field(default_factory=Roles)  # started with the server
    files: BlobStore = field(init=False)
    # Per-token publish rate buckets (PICLOUD_TOKEN_PUBLISH_RATE), made on first use.
    token_publish_buckets: TokenBuckets | None = None

    def __post_init__(self) -> None:
        self.files = BlobStore(self.settings.files_root)


STATE = web.AppKey("picloud_state", AppState)


def state_of(request: web.Request) -> AppState:
    return request.app[STATE]
