"""The ``gc`` role: retention pruning of the message log (PICLOUD_REALTIME_RETENTION_SEC)."""

from __future__ import annotations

import logging

import psycopg
from psycopg_pool import PoolTimeout

from picloud.node import Node, pause
from picloud.queries import q

log = logging.getLogger(__name__)


def prune_interval(retention_sec: int) -> float:
    """Prune a tenth of the retention period at a time, between once a second and a minute."""
    return float(min(60.0, max(1.0, retention_sec / 10)))


async def run(node: Node) -> None:
    retention = node.settings.realtime_retention_sec
    interval = prune_interval(retention)
    while not node.stopping.is_set():
        try:
            async with node.db.connection() as conn:
                row = await (
                    await conn.execute(q("prune_messages"), {"retention_sec": retention})
                ).fetchone()
            if row and row["deleted"]:
                log.info("pruned %d message(s) older than %ds", row["deleted"], retention)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.warning("message pruning failed (%s); will retry", exc)
        await pause(node.stopping, interval)
