"""The cron ticker role: fires due jobs once per due time across all nodes.

Every PICLOUD_CRON_TICK_INTERVAL_MS (the first tick is skipped: the first run comes one
interval after start-up) a node locks due jobs with FOR UPDATE SKIP LOCKED and, in the
same transaction, calls picloud.cron_fire, which enqueues the cron event and moves
next_run_at to the first time after the database's now(). Another node either skips
the locked row or, after the commit, no longer finds it due, so each due time fires
once. After downtime a job fires once for all the times it missed (no storm).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from picloud.cron.expressions import CronError, next_after, parse_expression
from picloud.node import Node, pause
from picloud.queries import q

log = logging.getLogger(__name__)

BATCH = 100


async def tick(conn: psycopg.AsyncConnection[Any]) -> int:
    """One tick on ``conn`` (autocommit): fire every due job; returns how many fired."""
    fired = 0
    while True:
        async with conn.transaction():
            cur = await conn.execute(q("cron_claim_due"), {"limit": BATCH})
            jobs = await cur.fetchall()
            for job in jobs:
                fired += await _handle(conn, job)
        if len(jobs) < BATCH:
            return fired


async def _handle(conn: psycopg.AsyncConnection[Any], job: dict[str, Any]) -> int:
    key = {"app_id": job["app_id"], "name": job["name"]}
    try:
        expression = parse_expression(job["expression"], job["timezone"])
        nxt = next_after(expression, job["timezone"], job["now"])
    except (CronError, ValueError, KeyError) as exc:
        log.warning("cron job %s/%s disabled: %s", job["app_id"], job["name"], exc)
        await conn.execute(q("cron_disable"), {**key, "error": str(exc) or type(exc).__name__})
        return 0
    if job["next_run_at"] is None:
        await conn.execute(q("cron_schedule"), {**key, "next_run_at": nxt})
        return 0
    cur = await conn.execute(
        q("cron_fire"), {**key, "due_at": job["next_run_at"], "next_run_at": nxt}
    )
    row = await cur.fetchone()
    return 0 if row is None or row["enqueued"] is None else 1


async def run(node: Node) -> None:
    interval = node.settings.cron_tick_interval_ms / 1000
    while True:
        if await pause(node.stopping, interval):
            return
        try:
            async with node.db.connection() as conn:
                fired = await tick(conn)
        except psycopg.Error:
            log.exception("cron tick failed; trying again next tick")
            continue
        if fired:
            log.info("cron tick fired %d job(s)", fired)
