"""``AsyncPiCloud``: the control plane over HTTP, and subscriptions.

Instance-level calls live on the client; everything under ``/api/v1/apps/{app_id}`` on
``client.app(app_id)``, an ``AsyncApp``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar, cast, overload
from urllib.parse import quote, urlencode

import httpx

from picloud_client._core import Clock, Core
from picloud_client.errors import ConnectionFailed
from picloud_client.events import Message, parse_message_fields
from picloud_client.subscribe import Backoff, Subscription, TokenSource
from picloud_client.types import (
    AppInfo,
    CreatedKey,
    Document,
    Domain,
    FileInfo,
    JsonObject,
    KvEntry,
    Page,
    PresentSubject,
    Published,
    PublishedBatch,
    SubscriberToken,
    Topic,
)
from picloud_client.validate import Validator, as_parser

T = TypeVar("T")

CHUNK = 64 * 1024
FileSource = bytes | str | os.PathLike[str] | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]
FileTarget = str | os.PathLike[str] | IO[bytes]


def _seg(value: str) -> str:
    """One path segment, percent-encoded."""
    return quote(str(value), safe="")


def _subpath(value: str) -> str:
    """A key or file path that may contain slashes (kept), each part percent-encoded."""
    return quote(str(value), safe="/")


def _drop_none(**fields: Any) -> JsonObject:
    return {k: v for k, v in fields.items() if v is not None}


class AsyncPiCloud:
    """An async PiCloud client: ``async with AsyncPiCloud(url, api_key=key) as pc: ...``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 30.0,
        retries: int = 3,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = Core(
            base_url, api_key, timeout=timeout, retries=retries, clock=clock, transport=transport
        )

    @property
    def base_url(self) -> str:
        return self._core.base_url

    async def __aenter__(self) -> AsyncPiCloud:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._core.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Any route (for what this version does not wrap yet), with the client's key,
        error mapping and retries: the response, body read, or the typed error."""
        return await self._core.request(method, path, json=json, params=params, headers=headers)

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._core.request(method, path, **kw)
        return response.json() if response.content else None

    # -- instance ------------------------------------------------------------------
    async def health(self) -> JsonObject:
        return cast(JsonObject, await self._json("GET", "/healthz"))

    async def version(self) -> dict[str, str]:
        return cast(dict[str, str], await self._json("GET", "/version"))

    async def create_app(self, slug: str, name: str | None = None) -> AppInfo:
        body = {"slug": slug, "name": name or slug}
        return cast(AppInfo, await self._json("POST", "/api/v1/apps", json=body))

    async def list_apps(self) -> list[AppInfo]:
        return cast(list[AppInfo], (await self._json("GET", "/api/v1/apps"))["apps"])

    async def publish_with_token(
        self, host: str | None, topic: str, message: Any, *, token: str
    ) -> Published:
        """Publish as a subscriber would, on the app's host (``Host`` header; None: the base
        URL's own) with a subscriber token minted with ``publish=True``; not retried."""
        headers = {"Authorization": f"Bearer {token}"}
        if host is not None:
            headers["Host"] = host
        path = f"/realtime/topics/{_seg(topic)}/messages"
        response = await self._core.request(
            "POST", path, json={"message": message}, headers=headers
        )
        return cast(Published, response.json())

    def app(self, app_id: str) -> AsyncApp:
        """The calls scoped to one app (no request is made here)."""
        return AsyncApp(self, str(app_id))

    def subscribe(
        self,
        host: str | None,
        topic: str | Sequence[str],
        *,
        token: str | None = None,
        get_token: TokenSource | None = None,
        last_event_id: int | str | None = None,
        validate: Validator[Any] | None = None,
        backoff: Backoff | None = None,
        read_timeout: float | None = 90.0,
    ) -> Subscription[Any]:
        """Subscribe on the app's own host: ``host`` is sent as the ``Host`` header (None:
        the base URL's own host, when that is already the app's domain). The token goes in
        ``Authorization``, never in the URL. ``get_token`` is awaited (or called) before every
        connect and after a 401; the stream resumes with ``Last-Event-ID`` after any drop.
        A list of topics opens one stream for all of them (``GET /realtime?topic=…``); its
        messages say their topic, and the one cursor resumes each where it was.
        """
        topics: tuple[str, ...] = ()
        if isinstance(topic, str):
            path, name = f"/realtime/topics/{_seg(topic)}", topic
        else:
            topics = tuple(topic)
            path = "/realtime?" + urlencode([("topic", t) for t in topics])
            name = ",".join(topics)
        return Subscription(
            self._core,
            path,
            topic=name,
            topics=topics,
            host=host,
            token=token,
            get_token=get_token,
            last_event_id=last_event_id,
            parse=as_parser(validate),
            backoff=backoff or Backoff(),
            read_timeout=read_timeout,
        )


class AsyncApp:
    """Calls under ``/api/v1/apps/{app_id}``."""

    def __init__(self, client: AsyncPiCloud, app_id: str) -> None:
        self.client = client
        self.id = app_id
        self._core = client._core
        self._base = f"/api/v1/apps/{_seg(app_id)}"

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        return await self.client._json(method, self._base + path, **kw)

    # -- the app itself ------------------------------------------------------------
    async def get(self) -> AppInfo:
        return cast(AppInfo, await self._json("GET", ""))

    async def update(self, *, slug: str | None = None, name: str | None = None) -> AppInfo:
        return cast(AppInfo, await self._json("PATCH", "", json=_drop_none(slug=slug, name=name)))

    async def delete(self) -> None:
        await self._json("DELETE", "")

    # -- domains and keys ----------------------------------------------------------
    async def add_domain(self, host: str) -> Domain:
        return cast(Domain, await self._json("POST", "/domains", json={"host": host}))

    async def list_domains(self) -> list[Domain]:
        return cast(list[Domain], (await self._json("GET", "/domains"))["domains"])

    async def remove_domain(self, host: str) -> None:
        await self._json("DELETE", f"/domains/{_seg(host)}")

    async def create_key(self, name: str, capabilities: list[str]) -> CreatedKey:
        body = {"name": name, "capabilities": capabilities}
        return cast(CreatedKey, await self._json("POST", "/keys", json=body))

    async def list_keys(self) -> list[JsonObject]:
        return cast(list[JsonObject], (await self._json("GET", "/keys"))["keys"])

    async def revoke_key(self, key_id: str) -> JsonObject:
        return cast(JsonObject, await self._json("DELETE", f"/keys/{_seg(key_id)}"))

    # -- topics, publish, history, tokens ---------------------------------------------
    async def create_topic(
        self,
        name: str,
        *,
        external_subscribable: bool = False,
        auth_mode: str = "token",
        presence: bool = False,
    ) -> Topic:
        body = {
            "name": name,
            "external_subscribable": external_subscribable,
            "auth_mode": auth_mode,
            "presence": presence,
        }
        return cast(Topic, await self._json("POST", "/topics", json=body))

    async def list_topics(self) -> list[Topic]:
        return cast(list[Topic], (await self._json("GET", "/topics"))["topics"])

    async def get_topic(self, name: str) -> Topic:
        return cast(Topic, await self._json("GET", f"/topics/{_seg(name)}"))

    async def update_topic(
        self,
        name: str,
        *,
        external_subscribable: bool | None = None,
        auth_mode: str | None = None,
        presence: bool | None = None,
    ) -> Topic:
        body = _drop_none(
            external_subscribable=external_subscribable, auth_mode=auth_mode, presence=presence
        )
        return cast(Topic, await self._json("PATCH", f"/topics/{_seg(name)}", json=body))

    async def presence(self, name: str) -> list[PresentSubject]:
        """Who is present on a presence topic, over every node (``topics:manage``)."""
        body = await self._json("GET", f"/topics/{_seg(name)}/presence")
        return cast(list[PresentSubject], body["subjects"])

    async def delete_topic(self, name: str) -> None:
        await self._json("DELETE", f"/topics/{_seg(name)}")

    async def publish(self, topic: str, message: Any) -> Published:
        """Publish one message (any JSON value); not retried (publishing is not idempotent)."""
        path = f"/topics/{_seg(topic)}/messages"
        return cast(Published, await self._json("POST", path, json={"message": message}))

    async def publish_batch(self, topic: str, messages: Sequence[Any]) -> PublishedBatch:
        """Publish several messages in one request, all or nothing: increasing ids, one
        notification (a bad element is a BadRequest/PayloadTooLarge naming its index)."""
        path = f"/topics/{_seg(topic)}/messages"
        body = {"messages": list(messages)}
        return cast(PublishedBatch, await self._json("POST", path, json=body))

    @overload
    async def history(
        self, topic: str, *, after: int = 0, limit: int = 100, validate: None = None
    ) -> list[Message[Any]]: ...

    @overload
    async def history(
        self, topic: str, *, after: int = 0, limit: int = 100, validate: Validator[T]
    ) -> list[Message[T]]: ...

    async def history(
        self,
        topic: str,
        *,
        after: int = 0,
        limit: int = 100,
        validate: Validator[Any] | None = None,
    ) -> list[Message[Any]]:
        """Retained messages after the sequence number ``after``, oldest first."""
        parse = as_parser(validate)
        params = {"after": after, "limit": limit}
        rows = (await self._json("GET", f"/topics/{_seg(topic)}/messages", params=params))[
            "messages"
        ]
        out: list[Message[Any]] = []
        for row in rows:
            data = row.get("data")
            if isinstance(data, str):  # the frame's JSON text, as on the stream
                seq, name, payload, at = parse_message_fields(str(row["id"]), data)
            else:
                seq, name, payload, at = (
                    int(row["id"]),
                    topic,
                    row.get("message"),
                    str(row.get("published_at", "")),
                )
            out.append(Message(seq, name, parse(payload), at, row.get("cursor")))
        return out

    async def mint_token(
        self,
        topic: str,
        ttl_seconds: int | None = None,
        *,
        publish: bool = False,
        subject: str | None = None,
    ) -> SubscriberToken:
        """A subscriber token for ``topic``; with ``publish`` it may also publish to it
        (needs topics:publish too), and its frames then say ``from``: ``subject``."""
        path = f"/topics/{_seg(topic)}/tokens"
        body = _drop_none(ttl_seconds=ttl_seconds, subject=subject)
        if publish:
            body["publish"] = True
        return cast(SubscriberToken, await self._json("POST", path, json=body))

    async def mint_stream_token(
        self,
        topics: Sequence[str],
        ttl_seconds: int | None = None,
        subject: str | None = None,
        info: JsonObject | None = None,
    ) -> SubscriberToken:
        """A token for one stream of several topics (``tokens:mint``); on presence topics
        its ``subject`` is present while connected, shown with ``info`` (≤ 1 KiB)."""
        body = _drop_none(topics=list(topics), ttl_seconds=ttl_seconds, subject=subject, info=info)
        return cast(SubscriberToken, await self._json("POST", "/tokens", json=body))

    def subscribe(
        self,
        topic: str,
        *,
        last_event_id: int | str | None = None,
        validate: Validator[Any] | None = None,
        backoff: Backoff | None = None,
        read_timeout: float | None = 90.0,
    ) -> Subscription[Any]:
        """Subscribe with this client's API key (``topics:manage``) on the server's own
        origin, internal topics included; resumes like ``AsyncPiCloud.subscribe``."""
        return Subscription(
            self._core,
            f"{self._base}/topics/{_seg(topic)}/stream",
            topic=topic,
            host=None,
            token=self._core.api_key,
            get_token=None,
            last_event_id=last_event_id,
            parse=as_parser(validate),
            backoff=backoff or Backoff(),
            read_timeout=read_timeout,
        )

    # -- kv -------------------------------------------------------------------------
    async def kv_get(self, key: str, *, validate: Validator[Any] | None = None) -> Any:
        """The value stored under ``key`` (``NotFound`` when there is none)."""
        entry = await self._json("GET", f"/kv/{_subpath(key)}")
        return as_parser(validate)(entry["value"])

    async def kv_set(self, key: str, value: Any) -> KvEntry:
        return cast(KvEntry, await self._json("PUT", f"/kv/{_subpath(key)}", json=value))

    async def kv_delete(self, key: str) -> None:
        await self._json("DELETE", f"/kv/{_subpath(key)}")

    async def kv_list(
        self, *, prefix: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        page = await self._json(
            "GET", "/kv", params=_drop_none(prefix=prefix, limit=limit, cursor=cursor)
        )
        return Page(items=page["entries"], next_cursor=page.get("next_cursor"))

    # -- documents ------------------------------------------------------------------
    def _doc_path(self, collection: str, doc_id: str | None = None) -> str:
        path = f"/collections/{_seg(collection)}/docs"
        return path if doc_id is None else f"{path}/{_seg(doc_id)}"

    async def create_doc(self, collection: str, data: JsonObject) -> Document:
        return cast(Document, await self._json("POST", self._doc_path(collection), json=data))

    async def get_doc(self, collection: str, doc_id: str) -> Document:
        return cast(Document, await self._json("GET", self._doc_path(collection, doc_id)))

    async def put_doc(
        self, collection: str, doc_id: str, data: JsonObject, *, if_match: int | None = None
    ) -> Document:
        """Create or replace; with ``if_match`` only if the document is at that version
        (else ``VersionConflict``)."""
        headers = {} if if_match is None else {"If-Match": f'"{if_match}"'}
        path = self._doc_path(collection, doc_id)
        return cast(Document, await self._json("PUT", path, json=data, headers=headers))

    async def delete_doc(
        self, collection: str, doc_id: str, *, if_match: int | None = None
    ) -> None:
        headers = {} if if_match is None else {"If-Match": f'"{if_match}"'}
        await self._json("DELETE", self._doc_path(collection, doc_id), headers=headers)

    async def list_docs(
        self, collection: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        params = _drop_none(limit=limit, cursor=cursor)
        page = await self._json("GET", self._doc_path(collection), params=params)
        return Page(items=page["docs"], next_cursor=page.get("next_cursor"))

    # -- files ----------------------------------------------------------------------
    async def upload(
        self,
        path: str,
        source: FileSource,
        *,
        content_type: str = "application/octet-stream",
    ) -> FileInfo:
        """Store a file from bytes, a local path, a binary file object or an (async)
        iterable of chunks; streamed in 64 KiB chunks, never read whole."""
        headers = {"Content-Type": content_type}
        if isinstance(source, bytes):
            content: Any = source
            headers["Content-Length"] = str(len(source))
        elif isinstance(source, str | os.PathLike):
            file_path = Path(source)
            size = (await asyncio.to_thread(file_path.stat)).st_size
            headers["Content-Length"] = str(size)
            content = _read_path(file_path)
        elif hasattr(source, "read"):
            content = _read_file(cast(IO[bytes], source))
        elif isinstance(source, AsyncIterable):
            content = source
        else:
            content = _from_sync(source)
        return cast(
            FileInfo,
            await self._json(
                "PUT", f"/files/{_subpath(path)}", content=content, headers=headers, retry=False
            ),
        )

    @asynccontextmanager
    async def open_file(self, path: str) -> AsyncIterator[httpx.Response]:
        """The download as a streaming ``httpx.Response`` (``aiter_bytes()``, headers)."""
        async with self._core.stream("GET", self._base + f"/files/{_subpath(path)}") as response:
            yield response

    async def download(self, path: str, target: FileTarget) -> int:
        """Write a file to a local path or a binary file object, chunk by chunk; returns
        the number of bytes written."""
        written = 0
        async with self.open_file(path) as response:
            if isinstance(target, str | os.PathLike):
                out = await asyncio.to_thread(Path(target).open, "wb")
                try:
                    written = await _copy(response, out)
                finally:
                    await asyncio.to_thread(out.close)
            else:
                written = await _copy(response, target)
        return written

    async def delete_file(self, path: str) -> None:
        await self._json("DELETE", f"/files/{_subpath(path)}")

    async def list_files(
        self, *, prefix: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        params = _drop_none(prefix=prefix, limit=limit, cursor=cursor)
        page = await self._json("GET", "/files", params=params)
        return Page(items=page["files"], next_cursor=page.get("next_cursor"))

    # -- cron -----------------------------------------------------------------------
    async def create_cron(
        self,
        name: str,
        expression: str,
        *,
        timezone: str | None = None,
        payload: JsonObject | None = None,
        enabled: bool | None = None,
    ) -> JsonObject:
        body = _drop_none(
            name=name, expression=expression, timezone=timezone, payload=payload, enabled=enabled
        )
        return cast(JsonObject, await self._json("POST", "/cron", json=body))

    async def list_cron(self) -> list[JsonObject]:
        return cast(list[JsonObject], (await self._json("GET", "/cron"))["cron_jobs"])

    async def get_cron(self, name: str) -> JsonObject:
        return cast(JsonObject, await self._json("GET", f"/cron/{_seg(name)}"))

    async def update_cron(self, name: str, /, **fields: Any) -> JsonObject:
        """Change any of ``expression``, ``timezone``, ``payload``, ``enabled``."""
        return cast(JsonObject, await self._json("PATCH", f"/cron/{_seg(name)}", json=fields))

    async def delete_cron(self, name: str) -> None:
        await self._json("DELETE", f"/cron/{_seg(name)}")

    # -- handlers and triggers --------------------------------------------------------
    async def create_handler(self, name: str, kind: str, /, **fields: Any) -> JsonObject:
        """``kind`` "webhook" (``url``, ``secret``, ``timeout_ms``) or "sql" (``function``)."""
        body = {"name": name, "kind": kind, **fields}
        return cast(JsonObject, await self._json("POST", "/handlers", json=body))

    async def list_handlers(self) -> list[JsonObject]:
        return cast(list[JsonObject], (await self._json("GET", "/handlers"))["handlers"])

    async def get_handler(self, handler_id: str) -> JsonObject:
        return cast(JsonObject, await self._json("GET", f"/handlers/{_seg(handler_id)}"))

    async def update_handler(self, handler_id: str, /, **fields: Any) -> JsonObject:
        path = f"/handlers/{_seg(handler_id)}"
        return cast(JsonObject, await self._json("PATCH", path, json=fields))

    async def delete_handler(self, handler_id: str) -> None:
        await self._json("DELETE", f"/handlers/{_seg(handler_id)}")

    async def create_trigger(
        self, name: str, source: str, handler_id: str, /, **fields: Any
    ) -> JsonObject:
        """``fields``: ``filter`` ({"match", "types"}), ``max_attempts``, ``enabled``."""
        body = {"name": name, "source": source, "handler_id": handler_id, **fields}
        return cast(JsonObject, await self._json("POST", "/triggers", json=body))

    async def list_triggers(self) -> list[JsonObject]:
        return cast(list[JsonObject], (await self._json("GET", "/triggers"))["triggers"])

    async def get_trigger(self, trigger_id: str) -> JsonObject:
        return cast(JsonObject, await self._json("GET", f"/triggers/{_seg(trigger_id)}"))

    async def update_trigger(self, trigger_id: str, /, **fields: Any) -> JsonObject:
        path = f"/triggers/{_seg(trigger_id)}"
        return cast(JsonObject, await self._json("PATCH", path, json=fields))

    async def delete_trigger(self, trigger_id: str) -> None:
        await self._json("DELETE", f"/triggers/{_seg(trigger_id)}")

    # -- deliveries and dead letters --------------------------------------------------
    async def list_deliveries(
        self, *, status: str | None = None, source: str | None = None, limit: int | None = None
    ) -> list[JsonObject]:
        params = _drop_none(status=status, source=source, limit=limit)
        return cast(
            list[JsonObject], (await self._json("GET", "/deliveries", params=params))["deliveries"]
        )

    async def get_delivery(self, delivery_id: int) -> JsonObject:
        return cast(JsonObject, await self._json("GET", f"/deliveries/{int(delivery_id)}"))

    async def list_dead_letters(
        self, *, source: str | None = None, limit: int | None = None
    ) -> list[JsonObject]:
        params = _drop_none(source=source, limit=limit)
        reply = await self._json("GET", "/dead-letters", params=params)
        return cast(list[JsonObject], reply["dead_letters"])

    async def get_dead_letter(self, dead_letter_id: int) -> JsonObject:
        return cast(JsonObject, await self._json("GET", f"/dead-letters/{int(dead_letter_id)}"))

    async def retry_dead_letter(self, dead_letter_id: int, *, force: bool = False) -> int:
        """Re-enqueue a fresh delivery for a dead letter; its id. A dead letter is retried
        once: again is a Conflict (code ``already_retried``) unless ``force``. Not retried by
        the client."""
        params = {"force": "true"} if force else None
        path = f"/dead-letters/{int(dead_letter_id)}/retry"
        reply = await self._json("POST", path, params=params)
        return int(reply["delivery_id"])

    async def retry_dead_letters(
        self,
        *,
        source: str | None = None,
        since: str | None = None,
        until: str | None = None,
        handler_id: str | None = None,
        limit: int | None = None,
        dry_run: bool = False,
    ) -> JsonObject:
        """Retry one batch (up to ``limit``) of the dead letters not yet retried that match
        the filter (ISO times, a handler id): ``{"retried", "remaining"}``; ``dry_run``
        only counts: ``{"matching", "until"}``."""
        body = _drop_none(
            source=source, since=since, until=until, handler_id=handler_id, limit=limit
        )
        if dry_run:
            body["dry_run"] = True
        return cast(JsonObject, await self._json("POST", "/dead-letters/retry", json=body))

    async def discard_dead_letter(self, dead_letter_id: int) -> None:
        await self._json("DELETE", f"/dead-letters/{int(dead_letter_id)}")


# Local file I/O runs on a worker thread, a chunk at a time, so the event loop never
# waits for the disk.
async def _read_path(path: Path) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        async for chunk in _read_file(handle):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


async def _read_file(handle: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(handle.read, CHUNK):
        yield chunk


async def _from_sync(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _copy(response: httpx.Response, out: IO[bytes]) -> int:
    written = 0
    try:
        async for chunk in response.aiter_bytes(CHUNK):
            await asyncio.to_thread(out.write, chunk)
            written += len(chunk)
    except httpx.TransportError as exc:
        raise ConnectionFailed(f"download interrupted after {written} bytes: {exc!r}") from exc
    return written
