"""picloud-client: PiCloud's control plane and resuming topic subscriptions, async
(``AsyncPiCloud``) and blocking (``PiCloud``)."""

from picloud_client._core import Clock, RealClock
from picloud_client.client import AsyncApp, AsyncPiCloud
from picloud_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PiCloudError,
    RateLimited,
    RetryableError,
    Unauthorized,
    Unavailable,
    VersionConflict,
)
from picloud_client.events import (
    Event,
    HistoryTruncated,
    Message,
    Presence,
    ProtocolError,
    Reset,
)
from picloud_client.subscribe import Backoff, Subscription
from picloud_client.sync import App, PiCloud, SyncSubscription

__version__ = "1.0.0"

__all__ = [
    "App",
    "AsyncApp",
    "AsyncPiCloud",
    "Backoff",
    "BadRequest",
    "Clock",
    "Conflict",
    "ConnectionFailed",
    "Event",
    "Forbidden",
    "HistoryTruncated",
    "Message",
    "NotFound",
    "PayloadTooLarge",
    "PiCloud",
    "PiCloudError",
    "Presence",
    "ProtocolError",
    "RateLimited",
    "RealClock",
    "Reset",
    "RetryableError",
    "Subscription",
    "SyncSubscription",
    "Unauthorized",
    "Unavailable",
    "VersionConflict",
    "__version__",
]
