"""Reading request bodies within a size limit and a time limit.

A declared ``Content-Length`` above the route's limit is refused (413) before a byte is
read, so a client cannot park a handler by announcing a body it never sends; a body that
does not arrive within ``PICLOUD_HTTP_BODY_TIMEOUT_SEC`` is 408 (for streamed uploads:
no chunk for that long).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from picloud.settings import Settings
from picloud.web.errors import ApiError
from picloud.web.state import state_of

JSON_BODY_LIMIT = 1024 * 1024
CHUNK_BYTES = 64 * 1024


def json_body_limit(settings: Settings) -> int:
    """The largest JSON body any route takes (a published message may be twice its own
    limit in escaped form)."""
    return max(JSON_BODY_LIMIT, settings.max_message_bytes * 2)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the body is larger than the limit of {limit} bytes")


def timed_out(seconds: float) -> ApiError:
    return ApiError(408, "body_timeout", f"the request body did not arrive within {seconds:g}s")


def check_declared_length(request: web.Request, limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)


async def read_body(request: web.Request) -> bytes:
    """The whole body of a JSON route."""
    settings = state_of(request).settings
    check_declared_length(request, json_body_limit(settings))
    if request.content.is_eof():  # it came with the headers: nothing left to wait for
        return await request.read()
    try:
        async with asyncio.timeout(settings.http_body_timeout_sec):
            return await request.read()
    except TimeoutError as exc:
        raise timed_out(settings.http_body_timeout_sec) from exc


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """A streamed upload's chunks, each of which must arrive within the body timeout."""
    seconds = state_of(request).settings.http_body_timeout_sec
    chunks = request.content.iter_chunked(CHUNK_BYTES).__aiter__()
    while True:
        try:
            async with asyncio.timeout(seconds):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise timed_out(seconds) from exc
        yield chunk
