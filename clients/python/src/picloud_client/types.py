"""The shapes of PiCloud's JSON answers (only the fields a caller relies on are named;
the server may add more)."""

from __future__ import annotations

from typing import Any, TypedDict

JsonObject = dict[str, Any]


class AppInfo(TypedDict):
    id: str
    slug: str
    name: str
    created_at: str


class Domain(TypedDict):
    host: str


class CreatedKey(TypedDict):
    """A new API key; ``key`` is the secret, shown only in this answer."""

    id: str
    key: str
    name: str
    capabilities: list[str]


class Topic(TypedDict):
    name: str
    external_subscribable: bool
    auth_mode: str
    presence: bool


class PresentSubject(TypedDict):
    """One subject present on a topic: the info of its earliest live connection, when that
    began, and how many live connections it has (tabs, devices, nodes)."""

    subject: str
    info: JsonObject | None
    connected_at: str
    connections: int


class Published(TypedDict):
    id: int
    published_at: str


class PublishedBatch(TypedDict):
    ids: list[int]
    published_at: str


class SubscriberToken(TypedDict):
    token: str
    expires_at: str


class KvEntry(TypedDict):
    key: str
    value: Any


class Page(TypedDict):
    """One page of a listing; pass ``next_cursor`` back as ``cursor`` for the next."""

    items: list[JsonObject]
    next_cursor: str | None


class Document(TypedDict):
    id: str
    collection: str
    version: int
    data: JsonObject


class FileInfo(TypedDict):
    path: str
    size: int
    sha256: str
    content_type: str
