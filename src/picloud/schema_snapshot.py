"""A normalised, diff-friendly description of schema ``picloud`` read from the catalogs.

It does not depend on a pg_dump matching the server's version. The test suite compares a
fresh migrate against the committed ``tests/schema_snapshot.txt``;
``picloud schema-snapshot > tests/schema_snapshot.txt`` re-blesses it.
"""

from __future__ import annotations

from typing import Any

import psycopg

from picloud.queries import q


def schema_snapshot(conn: psycopg.Connection[Any]) -> str:
    lines: list[str] = []
    for section in (
        "snapshot_tables",
        "snapshot_columns",
        "snapshot_constraints",
        "snapshot_indexes",
        "snapshot_triggers",
        "snapshot_views",
        "snapshot_functions",
    ):
        lines.append(f"-- {section.removeprefix('snapshot_')}")
        for row in conn.execute(q(section)).fetchall():
            values = row.values() if isinstance(row, dict) else row
            lines.append(" | ".join("" if v is None else str(v) for v in values))
        lines.append("")
    return "\n".join(lines)
