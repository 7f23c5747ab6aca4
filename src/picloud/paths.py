"""Where the SQL and migration files are: inside the wheel, or in the source tree."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_root() -> Path:
    """The directory holding ``migrations/`` and ``sql/``."""
    packaged = _PACKAGE / "_data"
    if (packaged / "migrations").is_dir():
        return packaged
    source_tree = _PACKAGE.parent.parent
    if (source_tree / "migrations").is_dir():
        return source_tree
    raise FileNotFoundError("PiCloud's migrations/ and sql/ directories are missing")
