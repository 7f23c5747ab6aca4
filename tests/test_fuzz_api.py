"""Fuzzing the whole API from its own OpenAPI document (schemathesis), with an instance
admin key: no 5xx, and every status, content type and body as documented (issue 11).

Only the operation that deletes apps is left out (it would delete the apps the other
operations are exercising). The run is bounded in examples and in time.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from tests.fix_server import ADMIN_KEY, Api, ServerFactory

MAX_EXAMPLES = 25
MAX_SECONDS = 80
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


async def test_schemathesis_finds_no_server_errors(
    server_factory: ServerFactory, http_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    server = await server_factory(roles=frozenset({"relay"}))
    # One real app, so that the operations under /apps/{app_id} get past "no such app".
    api = Api(http_session, server.url)
    app = await api.create_app("fuzzed")
    (tmp_path / "schemathesis.toml").write_text(f'[parameters]\n"path.app_id" = "{app["id"]}"\n')
    cli = Path(sys.executable).with_name("schemathesis")
    proc = await asyncio.create_subprocess_exec(
        str(cli),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {ADMIN_KEY}",
        "--checks",
        ",".join(CHECKS),
        "--exclude-operation-id",
        "delete_delete_app",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_SECONDS),
        "--seed",
        os.environ.get("PICLOUD_FUZZ_SEED", "11"),
        "--request-timeout",
        "10",
        "--workers",
        "1",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    output, _ = await asyncio.wait_for(proc.communicate(), MAX_SECONDS + 60)
    text = output.decode(errors="replace")
    print(text)
    assert proc.returncode == 0, text[-6000:]
