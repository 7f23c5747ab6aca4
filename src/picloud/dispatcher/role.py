"""The ``dispatcher`` background role of ``picloud serve``."""

from __future__ import annotations

from picloud.dispatcher.runner import Dispatcher
from picloud.roles import role
from picloud.web.state import AppState


@role("dispatcher")
async def run(state: AppState) -> None:
    dispatcher = Dispatcher(state.settings, state.conninfo, state.node_id, state.metrics.registry)
    state.roles["dispatcher"] = dispatcher
    await dispatcher.run(state.stopping)
