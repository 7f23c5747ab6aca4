"""Every route of the route table has its round-trip test (tests/test_round_trips_*.py):
one statement per request, refusals included; routes that need no database are asserted
to run none."""

from __future__ import annotations

import importlib
from pathlib import Path

import picloud.web.app  # noqa: F401  (imports every HTTP module, filling the route table)
from picloud.web.routing import routes
from tests.routes_covered import COVERED


def test_every_route_has_a_round_trip_test() -> None:
    for path in sorted(Path(__file__).parent.glob("test_round_trips_*.py")):
        importlib.import_module(f"tests.{path.stem}")
    table = {(route.method, route.path) for route in routes.routes}
    assert not COVERED - table, f"covers() names routes that do not exist: {COVERED - table}"
    missing = sorted(table - COVERED)
    assert not missing, f"routes without a round-trip test: {missing}"
