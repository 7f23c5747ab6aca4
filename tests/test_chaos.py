"""The short chaos run (bench/chaos.py --short): every fault once under load, and nothing
acknowledged lost, duplicated or reordered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.procs import picloud_env

CHAOS = Path(__file__).resolve().parent.parent / "bench" / "chaos.py"


def test_short_chaos_run_loses_nothing() -> None:
    done = subprocess.run(
        [sys.executable, str(CHAOS), "--short"],
        env=picloud_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["messages_acknowledged"] >= 1000
    # Every subscriber got every acknowledged message, once, in order.
    assert report["messages_received"] >= report["messages_acknowledged"] * report["subscribers"]
    for figure in (
        "acknowledged_but_undelivered",
        "duplicates",
        "reorders",
        "subscribers_without_reset",
        "acknowledged_without_row",
        "deliveries_lost",
        "deliveries_not_done",
    ):
        assert report[figure] == 0, (figure, report)
    assert report["deliveries"] > 0
    faults = [r["fault"] for r in report["recovery"]]
    assert sorted(faults) == sorted(
        [
            "kill_dispatcher",
            "listen_kill",
            "restart_fast",
            "restart_immediate",
            "kill_serve",
            "topic_recreate",
        ]
    )
    for entry in report["recovery"]:
        assert entry["publish_s"] is not None and entry["delivered_s"] is not None, entry
