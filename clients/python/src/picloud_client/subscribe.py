"""A resuming subscription to one topic's Server-Sent Events, or to several topics on one
stream (``GET /realtime?topic=…``, whose single cursor holds every topic's position).

After any drop it reconnects with ``Last-Event-ID`` (the id of the last message it
yielded), so the server replays exactly what was missed. Reconnects back off
exponentially (1 s, x2, capped at 30 s, less up to 20 % jitter) and the back-off starts
over after a successful open; a 429 or 503 waits at least its ``Retry-After`` (up to the
cap). ``get_token`` runs before every connect and again at once after a 401; when it
raises a ``RetryableError`` (its own call to PiCloud could not be served) that counts as
a failed connect, and anything else it raises ends the subscription. Cancelling the
consuming task (or ``aclose()``) closes the connection.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx
from httpx_sse import EventSource

from picloud_client.errors import RetryableError, Unauthorized, error_from_response
from picloud_client.events import (
    Event,
    Message,
    parse_history_truncated,
    parse_message_fields,
    parse_presence,
    parse_reset,
)

if TYPE_CHECKING:
    from picloud_client._core import Core

T = TypeVar("T")

TokenSource = Callable[[], Awaitable[str | None]] | Callable[[], str | None]


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: ``min(cap, initial * factor**attempt)`` less up to ``jitter`` of it."""

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.2

    def delay(self, attempt: int, random: float) -> float:
        base = min(self.cap, self.initial * self.factor**attempt)
        return base * (1.0 - self.jitter * random)


class Subscription(Generic[T]):
    """An async iterator of ``Message``, ``HistoryTruncated``, ``Reset`` and (on presence
    topics) ``Presence`` events.

    ``last_event_id`` is the id a reconnect sends; ``connects`` counts opened streams.
    """

    def __init__(
        self,
        core: Core,
        path: str,
        *,
        topic: str,
        topics: Sequence[str] = (),
        host: str | None,
        token: str | None,
        get_token: TokenSource | None,
        last_event_id: int | str | None,
        parse: Callable[[Any], Any],
        backoff: Backoff,
        read_timeout: float | None,
    ) -> None:
        self._core = core
        self._path = path
        self.topic = topic
        self._topics = tuple(topics)  # a stream of several: its topics
        self._host = host
        self._token = token
        self._get_token = get_token
        self.last_event_id = last_event_id
        self._parse = parse
        self.backoff = backoff
        self._timeout = httpx.Timeout(core.http.timeout.connect, read=read_timeout)
        self.connects = 0
        self._events: AsyncIterator[Event[T]] | None = None

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> Event[T]:
        if self._events is None:
            self._events = self._run()
        return await self._events.__anext__()

    async def aclose(self) -> None:
        if self._events is not None and inspect.isasyncgen(self._events):
            await self._events.aclose()

    async def __aenter__(self) -> Subscription[T]:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _token_now(self) -> str | None:
        if self._get_token is None:
            return self._token
        value = self._get_token()
        if inspect.isawaitable(value):
            value = await value
        self._token = value
        return value

    def _headers(self, token: str | None) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if self._host:
            headers["Host"] = self._host
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        return headers

    async def _run(self) -> AsyncIterator[Event[T]]:
        attempt = 0  # failed connects since the last successful open
        refused_401 = False
        http = self._core.http
        clock = self._core.clock
        while True:
            hint: float | None = None  # a Retry-After from the last refusal
            try:
                token = await self._token_now()
                request = http.build_request(
                    "GET", self._path, headers=self._headers(token), timeout=self._timeout
                )
                response = await http.send(request, stream=True)
                try:
                    if response.status_code != 200:
                        error = error_from_response(response, await response.aread())
                        if isinstance(error, Unauthorized) and self._get_token is not None:
                            if not refused_401:  # a fresh token, at once, once
                                refused_401 = True
                                continue
                        elif not isinstance(error, RetryableError):
                            raise error
                        else:
                            hint = error.retry_after
                    else:
                        refused_401 = False
                        attempt = 0
                        self.connects += 1
                        async for sse in EventSource(response).aiter_sse():
                            event = self._event(sse.event, sse.id, sse.data)
                            if event is not None:
                                yield event
                finally:
                    await response.aclose()
            except httpx.TransportError:
                pass  # dropped or refused: back off and resume
            except RetryableError as exc:  # get_token's own call failed for now
                hint = exc.retry_after
            delay = self.backoff.delay(attempt, clock.random())
            if hint is not None:  # the server asked for longer (429/503 with Retry-After)
                delay = max(delay, min(hint, self.backoff.cap))
            await clock.sleep(delay)
            attempt += 1

    def _event(self, name: str, event_id: str, data: str) -> Event[T] | None:
        if name == "message" and not data:
            # A cursor alone (a stream of several topics opens with one), or the blank
            # line after a comment: only the position moves.
            if event_id:
                self.last_event_id = event_id
            return None
        if name == "message":
            seq, topic, payload, published_at = parse_message_fields(event_id, data, self._topics)
            # Past it before validating: a payload that fails validation raises from the
            # iterator, and a new subscription from last_event_id continues after it.
            self.last_event_id = event_id
            return Message(seq, topic or self.topic, self._parse(payload), published_at, event_id)
        if name == "presence":
            return parse_presence(data)  # moves no cursor: presence is not replayed
        if name == "history_truncated":
            return parse_history_truncated(data)
        if name == "reset":
            reset = parse_reset(data)
            # The old log is gone: the frame's id is the position just before the new
            # one's start, where a reconnect resumes.
            self.last_event_id = event_id or None
            return reset
        return None  # an event type this client version does not know
