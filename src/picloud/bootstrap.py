"""The first instance admin key: PICLOUD_ADMIN_KEY, or one made and shown once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psycopg

from picloud.queries import q
from picloud.settings import Settings


@dataclass(frozen=True)
class Bootstrap:
    created_key: str | None
    key_file: Path | None


def ensure_admin(conninfo: str, settings: Settings) -> Bootstrap:
    """Register PICLOUD_ADMIN_KEY, or create a key when no live instance admin key exists.

    A created key is written to ``$PICLOUD_DATA_DIR/admin.key`` (mode 0600) and returned
    so the caller can print it once.
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if settings.admin_key:
            conn.execute(q("ensure_admin_key"), {"key": settings.admin_key})
            return Bootstrap(None, None)
        row = conn.execute(q("count_instance_admin_keys")).fetchone()
        if row and row[0] > 0:
            return Bootstrap(None, None)
        created = conn.execute(
            q("create_api_key"),
            {
                "app_id": None,
                "name": "bootstrap",
                "capabilities": ["instance:admin"],
                "expires_at": None,
            },
        ).fetchone()
        assert created is not None
        key: str = created[1]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key_file = settings.data_dir / "admin.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    os.chmod(key_file, 0o600)
    return Bootstrap(key, key_file)
