"""The server's state: the node, its background roles and what only the HTTP layer keeps,
in one object (aiohttp discourages mutating app[...])."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from picloud.files.store import BlobStore
from picloud.node import Metrics, Node
from picloud.roles import Roles
from picloud.web.publish_group import PublishGroups
from picloud.web.ratelimit import TokenBuckets

__all__ = ["STATE", "AppState", "Metrics", "publish_groups", "state_of"]


@dataclass
class AppState(Node):
    roles: Roles = field(default_factory=Roles)  # started with the server
    files: BlobStore = field(init=False)
    # Per-token publish rate buckets (PICLOUD_TOKEN_PUBLISH_RATE), made on first use.
    token_publish_buckets: TokenBuckets | None = None
    # The node's publish group commit (picloud.web.publish_group), made on first use.
    publish_groups: PublishGroups | None = None

    def __post_init__(self) -> None:
        self.files = BlobStore(self.settings.files_root)


STATE = web.AppKey("picloud_state", AppState)


def state_of(request: web.Request) -> AppState:
    return request.app[STATE]


def publish_groups(request: web.Request) -> PublishGroups:
    """The node's publish groups (made on first use, on the server's pool)."""
    state = state_of(request)
    if state.publish_groups is None:
        state.publish_groups = PublishGroups(state.db, state.metrics.registry)
    return state.publish_groups
