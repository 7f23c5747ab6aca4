"""A non-editable install ships the SQL: the wheel contains migrations/ and sql/."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_migrations_and_sql(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("picloud-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (ROOT / "migrations").glob("*.sql"):
        assert f"picloud/_data/migrations/{path.name}" in names
    for path in (ROOT / "sql").glob("*.sql"):
        assert f"picloud/_data/sql/{path.name}" in names
    assert any(n.startswith("picloud/queries/") and n.endswith(".sql") for n in names)
    assert "picloud/cli/__init__.py" in names
    for asset in ("index.html", "app.js", "api.js", "ui.js", "styles.css"):
        assert f"picloud/dashboard/{asset}" in names
