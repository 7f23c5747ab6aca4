"""Named SQL queries, one ``.sql`` file per concept in this package.

Each query is a block introduced by ``-- name: <query_name>`` followed by a one-line
description comment; Python code refers to queries by name and never builds SQL text.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    parts = _HEADER.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        found[name] = body.strip()
    return found


@cache
def all_queries() -> dict[str, str]:
    queries: dict[str, str] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, body in parse_queries(entry.read_text(encoding="utf-8")).items():
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice (in {entry.name})")
            queries[name] = body
    return queries


def q(name: str) -> str:
    """The text of the named query; KeyError names a missing one."""
    return all_queries()[name]
