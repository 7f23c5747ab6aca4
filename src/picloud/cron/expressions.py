"""Five-field cron expressions and time zones, parsed with croniter and zoneinfo."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, croniter

FIELDS = "minute hour day-of-month month day-of-week"
# The largest value of each field: a step beyond it is a mistake (0-59/61), not a schedule.
FIELD_MAX = (59, 23, 31, 12, 7)
_STEP = re.compile(r"/([0-9]+)")


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


class CronError(ValueError):
    """An expression or time zone PiCloud cannot use; ``field`` names the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_timezone(name: str) -> ZoneInfo:
    if not name or len(name) > 64:
        raise CronError("timezone", "must be an IANA time zone name such as UTC or Europe/Paris")
    # Only real zone keys: ZoneInfo() alone would open e.g. "America" (a directory).
    if name not in _zone_names():
        raise CronError("timezone", f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise CronError("timezone", f"unknown time zone {name!r}") from exc


def next_after(expression: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``expression`` names, in UTC."""
    zone = parse_timezone(timezone)
    try:
        nxt = croniter(expression, after.astimezone(zone)).get_next(datetime)
    except CroniterBadDateError as exc:
        raise CronError("expression", f"{expression!r} never matches a date") from exc
    assert isinstance(nxt, datetime)
    return nxt.astimezone(UTC)


def parse_expression(expression: str, timezone: str = "UTC") -> str:
    """The expression with single spaces, when it has five valid fields that ever fire."""
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(
            "expression", f"must have five fields ({FIELDS}), got {len(fields)}: {expression!r}"
        )
    normalized = " ".join(fields)
    for name, field, top in zip(FIELDS.split(), fields, FIELD_MAX, strict=True):
        for step in _STEP.findall(field):
            if not 1 <= int(step) <= top:
                raise CronError("expression", f"the {name} step /{step} is not within 1-{top}")
    if not croniter.is_valid(normalized):
        raise CronError("expression", f"{expression!r} is not a valid cron expression ({FIELDS})")
    next_after(normalized, timezone, datetime.now(UTC))
    return normalized
