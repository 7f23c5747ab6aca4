"""``picloud dispatcher``: run only the dispatcher (e.g. on a separate node)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from picloud.cli.common import Sub
from picloud.db import database_url, new_node_id
from picloud.dispatcher.runner import Dispatcher
from picloud.migrate import migrate
from picloud.settings import Settings, load_settings
from picloud.startup import wait_for_database

log = logging.getLogger("picloud")


async def _dispatch(settings: Settings, conninfo: str) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGTERM and SIGINT end the loop normally, so leases are released and the embedded
    # PostgreSQL (if this process started it) is stopped on the way out.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    node_id = new_node_id()
    log.info("dispatcher %s running", node_id)
    await Dispatcher(settings, conninfo, node_id).run(stopping)
    log.info("dispatcher %s stopped", node_id)


def _dispatcher(args: argparse.Namespace) -> int:
    settings = load_settings()
    with database_url(settings) as url:
        wait_for_database(url, settings)
        if args.migrate:
            migrate(url)
        print("PiCloud dispatcher running", flush=True)
        asyncio.run(_dispatch(settings, url))
    return 0


def register(sub: Sub) -> None:
    cmd = sub.add_parser(
        "dispatcher",
        help="run only the dispatcher: claim deliveries and run their handlers",
        description="Claim outbox deliveries and run their webhook and SQL handlers until "
        "SIGTERM/SIGINT, like the dispatcher role of `picloud serve`. Any number may run "
        "against one database.",
    )
    cmd.add_argument("--migrate", action="store_true", help="migrate the database first")
    cmd.set_defaults(func=_dispatcher)
