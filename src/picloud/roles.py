"""Background roles (realtime relay, dispatcher, cron ticker, GC, sweeper).

A role is a coroutine function that runs until ``state.stopping`` is set. Modules
register theirs with ``@role("name")``; ``PICLOUD_ROLES`` picks which run in a process,
so several nodes can share one database with different duties.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from picloud.web.state import AppState

log = logging.getLogger(__name__)

RoleFn = Callable[["AppState"], Awaitable[None]]

ROLE_FUNCTIONS: dict[str, RoleFn] = {}

RESTART_DELAY_SEC = 1.0


def new_node_id() -> str:
    """This process's name among the nodes sharing a database (host, pid, a random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def pause(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``, or less when ``stopping`` is set; True when it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()


def role(name: str) -> Callable[[RoleFn], RoleFn]:
    def register(fn: RoleFn) -> RoleFn:
        ROLE_FUNCTIONS[name] = fn
        return fn

    return register


async def supervise(name: str, fn: RoleFn, state: AppState) -> None:
    """Run a role; if it crashes, log it and start it again (it must never die silently)."""
    while not state.stopping.is_set():
        try:
            await fn(state)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("role %s crashed; restarting in %.0fs", name, RESTART_DELAY_SEC)
            await pause(state.stopping, RESTART_DELAY_SEC)


def start_roles(state: AppState) -> None:
    for name in sorted(state.settings.roles):
        fn = ROLE_FUNCTIONS.get(name)
        if fn is None:
            continue
        task = asyncio.create_task(supervise(name, fn, state), name=f"picloud-role-{name}")
        state.tasks.append(task)
        log.info("role %s started", name)


async def stop_roles(state: AppState, grace_sec: float = 10.0) -> None:
    """Ask every role to stop, give them ``grace_sec`` seconds to finish, then cancel."""
    state.stopping.set()
    if not state.tasks:
        return
    _, pending = await asyncio.wait(state.tasks, timeout=grace_sec)
    for task in pending:
        task.cancel()
    await asyncio.gather(*state.tasks, return_exceptions=True)
    state.tasks.clear()
