"""Cron patterns and time zones, behind one small interface (croniter today).

Patterns have 5 fields (minute hour day month weekday) or 6 with seconds
first, as BullMQ reads them. Times are computed in the scheduler's IANA time
zone (``zoneinfo``), so "every day at 09:00 Europe/Berlin" stays at 09:00
local time across daylight-saving changes:

- a local time that does not exist (spring forward) fires at the first valid
  time after the gap (02:30 on a 02:00→03:00 night fires at 03:00);
- a local time that occurs twice (fall back) fires once, at its first
  occurrence, for patterns that name their hours (``30 2 * * *``); patterns
  that run every hour (``0 * * * *``, ``*/15 * * * *``) keep running through
  the repeated hour, as elapsed time goes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from .errors import InvalidJobOptionsError


def zone(tz: str | None) -> ZoneInfo | timezone:
    """The time zone named ``tz`` (UTC when ``None``); raises for unknown names."""
    if tz is None:
        return timezone.utc
    if not isinstance(tz, str) or not tz:
        raise InvalidJobOptionsError(f"tz must be an IANA time zone name, got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidJobOptionsError(f"tz: unknown time zone {tz!r}") from exc


def _seconds_first(pattern: str) -> bool:
    return len(pattern.split()) == 6


def validate(pattern: object, tz: str | None = None) -> str:
    """Return ``pattern`` if it is a valid 5- or 6-field cron pattern."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise InvalidJobOptionsError(f"pattern must be a cron pattern string, got {pattern!r}")
    fields = pattern.split()
    if len(fields) not in (5, 6):
        raise InvalidJobOptionsError(
            f"pattern must have 5 fields (or 6 with seconds first), got {pattern!r}"
        )
    if not croniter.is_valid(pattern, second_at_beginning=_seconds_first(pattern)):
        raise InvalidJobOptionsError(f"pattern: invalid cron pattern {pattern!r}")
    zone(tz)
    next_after(pattern, tz, 0)  # a pattern that never matches (31 February) fails here
    return pattern


def _fixed_hour(pattern: str) -> bool:
    """Whether the pattern names its hours (``30 2 * * *``) rather than running
    every hour (``0 * * * *``, ``*/15 * * * *``, ``0 */2 * * *``)."""
    fields = pattern.split()
    hour = fields[2] if len(fields) == 6 else fields[1]
    return "*" not in hour


def _is_second_occurrence(moment: datetime, tz: ZoneInfo | timezone) -> bool:
    """True for the repeat of an ambiguous local time (the hour after fall back)."""
    if not isinstance(tz, ZoneInfo):
        return False
    local = moment.astimezone(tz).replace(tzinfo=None)
    first = local.replace(fold=0, tzinfo=tz)
    second = local.replace(fold=1, tzinfo=tz)
    if first.utcoffset() == second.utcoffset():
        return False
    return moment.astimezone(timezone.utc) == second.astimezone(timezone.utc)


def next_after(pattern: str, tz: str | None, after_ms: int) -> int:
    """Milliseconds of the first match of ``pattern`` strictly after ``after_ms``."""
    tzinfo = zone(tz)
    start = datetime.fromtimestamp(after_ms / 1000, tz=timezone.utc).astimezone(tzinfo)
    it = croniter(pattern, start, second_at_beginning=_seconds_first(pattern))
    once = _fixed_hour(pattern)
    for _ in range(1000):
        try:
            candidate: datetime = it.get_next(datetime)
        except CroniterBadDateError as exc:
            raise InvalidJobOptionsError(f"pattern {pattern!r} never matches a date") from exc
        if candidate.tzinfo is None:
            candidate = candidate.replace(tzinfo=tzinfo)
        if not (once and _is_second_occurrence(candidate, tzinfo)):
            ms = int(candidate.timestamp() * 1000)
            if ms > after_ms:
                return ms
    raise InvalidJobOptionsError(f"pattern {pattern!r} has no future match")  # pragma: no cover


def first_at_or_after(pattern: str, tz: str | None, at_ms: int) -> int:
    """The first match at or after ``at_ms``."""
    return next_after(pattern, tz, at_ms - 1)


__all__ = ["first_at_or_after", "next_after", "validate", "zone"]
