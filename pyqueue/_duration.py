"""Durations: seconds (int, float) or a ``timedelta``, checked and turned into milliseconds."""

from __future__ import annotations

import math
from datetime import timedelta

from .errors import InvalidJobOptionsError

__all__ = ["MAX_DURATION_SECONDS", "duration_ms"]

#: Longest duration accepted anywhere. Delayed-job scores are due_ms * 4096,
#: exact in a double only below 2**53 (the year 2039), so delays must be bounded.
MAX_DURATION_SECONDS = 10 * 365 * 24 * 3600


def duration_ms(value: object, option: str, *, allow_zero: bool = True) -> int:
    """Seconds (int, float) or a timedelta, as whole milliseconds."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidJobOptionsError(
            f"{option} must be seconds (int or float) or a timedelta, got "
            f"{type(value).__name__}: {value!r}"
        )
    else:
        seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds):
        raise InvalidJobOptionsError(f"{option} must be a finite duration, got {value!r}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidJobOptionsError(f"{option} must be {bound} seconds, got {value!r}")
    if seconds > MAX_DURATION_SECONDS:
        raise InvalidJobOptionsError(
            f"{option} must be at most {MAX_DURATION_SECONDS} seconds (10 years), got {value!r}"
        )
    return round(seconds * 1000)
