"""The dashboard reads its live tail with the TypeScript client's event-stream parser:
``sse.js`` (generated from ``clients/typescript/src/sse.ts``; the client's lint step
fails when it is stale) is the only parser among the dashboard's files, and it is served
and loaded like the others."""

from __future__ import annotations

import re

from picloud.web.dashboard import assets
from tests.fix_server import Api


def test_the_dashboard_has_one_sse_parser_the_clients() -> None:
    files = assets()
    parsers = sorted(n for n, a in files.items() if b"class SseParser" in a.body)
    assert parsers == ["sse.js"]
    sse = files["sse.js"].body.decode()
    assert sse.startswith("// Generated from clients/typescript/src/sse.ts")
    # A plain module the browser loads on its own: it imports nothing.
    assert not re.search(r"^\s*import\b", sse, re.MULTILINE)
    assert 'import { SseParser } from "./sse.js";' in files["api.js"].body.decode()


async def test_the_parser_module_is_served(api: Api) -> None:
    reply = await api.get("/dashboard/sse.js", key=None)
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert b"export class SseParser" in reply.raw
    again = await api.get(
        "/dashboard/sse.js", key=None, headers={"If-None-Match": reply.headers["ETag"]}
    )
    assert again.status == 304
