"""The request path every call takes: auth header, error mapping, and the retry of
idempotent requests that a server refused with 503 and a ``Retry-After``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import httpx

from picloud_client.errors import ConnectionFailed, Unavailable, error_from_response

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
MAX_RETRY_AFTER = 30.0


class Clock(Protocol):
    """How the client waits and draws jitter; tests pass a fake one to check back-off
    timing without waiting."""

    async def sleep(self, seconds: float) -> None: ...

    def random(self) -> float: ...


class RealClock:
    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def random(self) -> float:
        return random.random()


class Core:
    """An ``httpx.AsyncClient`` bound to one server and one API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float | httpx.Timeout = 30.0,
        retries: int = 3,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.retries = retries
        self.clock: Clock = clock or RealClock()
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "picloud-client-python/1.0.0"},
        )

    def auth_headers(self, key: str | None = None) -> dict[str, str]:
        use = key or self.api_key
        return {"Authorization": f"Bearer {use}"} if use else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: Any = None,
        retry: bool | None = None,
    ) -> httpx.Response:
        """Send; return the 2xx/304 response (body read) or raise the typed error."""
        async with self.stream(
            method, path, json=json, params=params, headers=headers, content=content, retry=retry
        ) as response:
            await response.aread()
            return response

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: Any = None,
        retry: bool | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Like ``request`` but the body is left unread, to be streamed by the caller."""
        hdrs = {**self.auth_headers(), **(headers or {})}
        may_retry = (method in IDEMPOTENT) if retry is None else retry
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            request = self.http.build_request(
                method, path, json=json, params=query, headers=hdrs, content=content
            )
            try:
                response = await self.http.send(request, stream=True)
            except httpx.TransportError as exc:
                raise ConnectionFailed(f"{method} {path}: {exc!r}") from exc
            try:
                if response.status_code < 400:
                    yield response
                    return
                body = await response.aread()
            finally:
                await response.aclose()
            error = error_from_response(response, body)
            if (
                may_retry
                and isinstance(error, Unavailable)
                and error.retry_after is not None
                and attempt < self.retries
            ):
                attempt += 1
                await self.clock.sleep(min(error.retry_after, MAX_RETRY_AFTER))
                continue
            raise error

    async def aclose(self) -> None:
        await self.http.aclose()
