"""Background roles (realtime relay, dispatcher, cron ticker, GC, sweeper) of a node.

``PICLOUD_ROLES`` picks which run in a process, so several nodes can share one database
with different duties. ``start_roles`` starts them, each supervised (restarted when it
crashes), until the node is stopping; the ``Roles`` it returns holds a typed handle of
each role that others talk to (None where it does not run here).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from picloud.cron import ticker
from picloud.dispatcher.runner import Dispatcher
from picloud.files.sweeper import Sweeper
from picloud.node import Node, pause
from picloud.realtime import gc
from picloud.realtime.relay import Relay

log = logging.getLogger(__name__)

RESTART_DELAY_SEC = 1.0

RoleRun = Callable[[], Awaitable[None]]


@dataclass
class Roles:
    relay: Relay | None = None
    dispatcher: Dispatcher | None = None
    sweeper: Sweeper | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def supervise(name: str, run: RoleRun, stopping: asyncio.Event) -> None:
    """Run a role; if it crashes, log it and start it again (it must never die silently)."""
    while not stopping.is_set():
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("role %s crashed; restarting in %.0fs", name, RESTART_DELAY_SEC)
            await pause(stopping, RESTART_DELAY_SEC)


def start_roles(node: Node) -> Roles:
    """Start the roles ``node.settings.roles`` names."""
    wanted = node.settings.roles
    roles = Roles()
    runs: dict[str, RoleRun] = {}
    if "relay" in wanted:
        relay = roles.relay = Relay(node)
        runs["relay"] = lambda: _relay(relay, node.stopping)
    if "dispatcher" in wanted:
        runs["dispatcher"] = lambda: _dispatcher(node, roles)
    if "cron" in wanted:
        runs["cron"] = lambda: ticker.run(node)
    if "gc" in wanted:
        runs["gc"] = lambda: gc.run(node)
    if "sweeper" in wanted:
        sweeper = roles.sweeper = Sweeper(node)
        runs["sweeper"] = sweeper.run
    for name in sorted(runs):
        task = asyncio.create_task(
            supervise(name, runs[name], node.stopping), name=f"picloud-role-{name}"
        )
        roles.tasks.append(task)
        log.info("role %s started", name)
    return roles


async def _dispatcher(node: Node, roles: Roles) -> None:
    # A new one at each (re)start: nothing of a crashed run is carried over.
    roles.dispatcher = Dispatcher(node.settings, node.conninfo, node.node_id, node.metrics.registry)
    await roles.dispatcher.run(node.stopping)


async def _relay(relay: Relay, stopping: asyncio.Event) -> None:
    try:
        await relay.run()
    finally:
        if stopping.is_set():
            relay.hub.close_all()


async def stop_roles(node: Node, roles: Roles, grace_sec: float = 10.0) -> None:
    """Ask every role to stop, give them ``grace_sec`` seconds to finish, then cancel."""
    node.stopping.set()
    if not roles.tasks:
        return
    _, pending = await asyncio.wait(roles.tasks, timeout=grace_sec)
    for task in pending:
        task.cancel()
    await asyncio.gather(*roles.tasks, return_exceptions=True)
    roles.tasks.clear()
