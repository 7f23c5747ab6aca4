"""Files are served on the API origin: never sniffed, always sandboxed, active types as
downloads only (issue 11)."""

from __future__ import annotations

import pytest

from tests.fix_server import Api

ACTIVE = [
    "text/html",
    "text/html; charset=utf-8",
    "TEXT/HTML",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "application/atom+xml",
    "text/javascript",
    "application/javascript",
]
PASSIVE = ["text/plain", "image/png", "application/json", "application/octet-stream"]


@pytest.mark.parametrize("content_type", ACTIVE + PASSIVE)
async def test_file_response_headers(api: Api, content_type: str) -> None:
    app = await api.create_app("files")
    path = f"/api/v1/apps/{app['id']}/files/f"
    body = b"<script>alert(1)</script>"
    put = await api.put(path, data=body, headers={"Content-Type": content_type})
    assert put.status == 201, put.raw
    got = await api.get(path)
    assert got.status == 200 and got.raw == body
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Security-Policy"] == "sandbox"
    assert got.headers["Content-Type"].lower().startswith(content_type.split(";")[0].lower())
    if content_type in ACTIVE:
        assert got.headers["Content-Disposition"] == "attachment"
    else:
        assert "Content-Disposition" not in got.headers
    cached = await api.get(path, headers={"If-None-Match": got.headers["ETag"]})
    assert cached.status == 304
    assert cached.headers["X-Content-Type-Options"] == "nosniff"
