"""``PiCloud``: the same client for code without an event loop.

Each instance runs a private event loop on a daemon thread and drives the async client
there, so both forms share one implementation (and one connection pool per client).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import httpx

from picloud_client._core import Clock
from picloud_client.client import AsyncApp, AsyncPiCloud
from picloud_client.events import Event, Message
from picloud_client.subscribe import Backoff, Subscription, TokenSource
from picloud_client.validate import Validator

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class _Portal:
    """An event loop on its own thread; ``run`` waits for a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError(
                "a blocking PiCloud call from inside its own client (e.g. a sync get_token"
                " using the same client) would wait for itself: use another client"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt in the caller: stop the request too
            raise

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def _sync(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Any, P], R]:
    """The blocking form of an ``AsyncApp``/``AsyncPiCloud`` method."""
    name = method.__name__

    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self._portal.run(getattr(self._async, name)(*args, **kwargs))
        return result

    call.__name__ = name
    call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


class SyncSubscription(Generic[T]):
    """A blocking iterator over a ``Subscription``; ``close()`` ends it."""

    def __init__(self, portal: _Portal, subscription: Subscription[T]) -> None:
        self._portal = portal
        self.subscription = subscription

    @property
    def last_event_id(self) -> int | str | None:
        return self.subscription.last_event_id

    def __iter__(self) -> SyncSubscription[T]:
        return self

    def __next__(self) -> Event[T]:
        try:
            return self._portal.run(self.subscription.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        if not self._portal.loop.is_closed():  # closing the client closed everything
            self._portal.run(self.subscription.aclose())

    def __enter__(self) -> SyncSubscription[T]:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PiCloud:
    """A blocking PiCloud client: ``with PiCloud(url, api_key=key) as pc: ...``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 30.0,
        retries: int = 3,
        clock: Clock | None = None,
    ) -> None:
        self._portal = _Portal()
        self._async = AsyncPiCloud(base_url, api_key, timeout=timeout, retries=retries, clock=clock)

    @property
    def base_url(self) -> str:
        return self._async.base_url

    def __enter__(self) -> PiCloud:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if not self._portal.loop.is_closed():
            self._portal.run(self._async.aclose())
        self._portal.close()

    request = _sync(AsyncPiCloud.request)
    health = _sync(AsyncPiCloud.health)
    version = _sync(AsyncPiCloud.version)
    create_app = _sync(AsyncPiCloud.create_app)
    list_apps = _sync(AsyncPiCloud.list_apps)
    publish_with_token = _sync(AsyncPiCloud.publish_with_token)

    def app(self, app_id: str) -> App:
        return App(self._portal, self._async.app(app_id))

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
    ) -> SyncSubscription[Any]:
        """Blocking form of ``AsyncPiCloud.subscribe`` (an async ``get_token`` runs on the
        client's own loop)."""
        sub = self._async.subscribe(
            host,
            topic,
            token=token,
            get_token=get_token,
            last_event_id=last_event_id,
            validate=validate,
            backoff=backoff,
            read_timeout=read_timeout,
        )
        return SyncSubscription(self._portal, sub)


class App:
    """Blocking calls under ``/api/v1/apps/{app_id}`` (see ``AsyncApp``)."""

    def __init__(self, portal: _Portal, app: AsyncApp) -> None:
        self._portal = portal
        self._async = app
        self.id = app.id

    get = _sync(AsyncApp.get)
    update = _sync(AsyncApp.update)
    delete = _sync(AsyncApp.delete)
    add_domain = _sync(AsyncApp.add_domain)
    list_domains = _sync(AsyncApp.list_domains)
    remove_domain = _sync(AsyncApp.remove_domain)
    create_key = _sync(AsyncApp.create_key)
    list_keys = _sync(AsyncApp.list_keys)
    revoke_key = _sync(AsyncApp.revoke_key)
    create_topic = _sync(AsyncApp.create_topic)
    list_topics = _sync(AsyncApp.list_topics)
    get_topic = _sync(AsyncApp.get_topic)
    update_topic = _sync(AsyncApp.update_topic)
    presence = _sync(AsyncApp.presence)
    delete_topic = _sync(AsyncApp.delete_topic)
    publish = _sync(AsyncApp.publish)
    publish_batch = _sync(AsyncApp.publish_batch)
    mint_token = _sync(AsyncApp.mint_token)
    kv_get = _sync(AsyncApp.kv_get)
    kv_set = _sync(AsyncApp.kv_set)
    kv_delete = _sync(AsyncApp.kv_delete)
    kv_list = _sync(AsyncApp.kv_list)
    create_doc = _sync(AsyncApp.create_doc)
    get_doc = _sync(AsyncApp.get_doc)
    put_doc = _sync(AsyncApp.put_doc)
    delete_doc = _sync(AsyncApp.delete_doc)
    list_docs = _sync(AsyncApp.list_docs)
    upload = _sync(AsyncApp.upload)
    download = _sync(AsyncApp.download)
    delete_file = _sync(AsyncApp.delete_file)
    list_files = _sync(AsyncApp.list_files)
    create_cron = _sync(AsyncApp.create_cron)
    list_cron = _sync(AsyncApp.list_cron)
    get_cron = _sync(AsyncApp.get_cron)
    update_cron = _sync(AsyncApp.update_cron)
    delete_cron = _sync(AsyncApp.delete_cron)
    create_handler = _sync(AsyncApp.create_handler)
    list_handlers = _sync(AsyncApp.list_handlers)
    get_handler = _sync(AsyncApp.get_handler)
    update_handler = _sync(AsyncApp.update_handler)
    delete_handler = _sync(AsyncApp.delete_handler)
    create_trigger = _sync(AsyncApp.create_trigger)
    list_triggers = _sync(AsyncApp.list_triggers)
    get_trigger = _sync(AsyncApp.get_trigger)
    update_trigger = _sync(AsyncApp.update_trigger)
    delete_trigger = _sync(AsyncApp.delete_trigger)
    list_deliveries = _sync(AsyncApp.list_deliveries)
    get_delivery = _sync(AsyncApp.get_delivery)
    list_dead_letters = _sync(AsyncApp.list_dead_letters)
    get_dead_letter = _sync(AsyncApp.get_dead_letter)
    retry_dead_letter = _sync(AsyncApp.retry_dead_letter)
    retry_dead_letters = _sync(AsyncApp.retry_dead_letters)
    discard_dead_letter = _sync(AsyncApp.discard_dead_letter)

    @overload
    def history(
        self, topic: str, *, after: int = 0, limit: int = 100, validate: None = None
    ) -> list[Message[Any]]: ...

    @overload
    def history(
        self, topic: str, *, after: int = 0, limit: int = 100, validate: Validator[T]
    ) -> list[Message[T]]: ...

    def history(
        self,
        topic: str,
        *,
        after: int = 0,
        limit: int = 100,
        validate: Validator[Any] | None = None,
    ) -> list[Message[Any]]:
        return self._portal.run(
            self._async.history(topic, after=after, limit=limit, validate=validate)
        )

    def subscribe(
        self,
        topic: str,
        *,
        last_event_id: int | str | None = None,
        validate: Validator[Any] | None = None,
        backoff: Backoff | None = None,
        read_timeout: float | None = 90.0,
    ) -> SyncSubscription[Any]:
        sub = self._async.subscribe(
            topic,
            last_event_id=last_event_id,
            validate=validate,
            backoff=backoff,
            read_timeout=read_timeout,
        )
        return SyncSubscription(self._portal, sub)
