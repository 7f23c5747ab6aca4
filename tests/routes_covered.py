"""Which routes of the route table the round-trip tests cover (tests/test_round_trips_*.py
declare theirs with ``covers``; tests/test_round_trip_coverage.py checks none is missing)."""

from __future__ import annotations

COVERED: set[tuple[str, str]] = set()


def covers(*routes: tuple[str, str]) -> None:
    COVERED.update(routes)
