"""Sending limits in the shape providers state them.

``set_send_rate(queue, 14)`` paces sending evenly across every worker of the
queue: one message per ``1/14`` s, using the queue's global rate limit with a
window of one job. ``queue.set_global_rate_limit(14, 1)`` also caps the rate
at 14 a second, but as a fixed window: up to 14 messages go out together at
the start of each second. Providers that measure "messages per second" over
a sliding window (Amazon SES, for one) want the even pace.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, overload

from ..queue import AsyncQueue, Queue


@overload
def set_send_rate(queue: Queue, per_second: float | None) -> None: ...


@overload
def set_send_rate(queue: AsyncQueue, per_second: float | None) -> Coroutine[Any, Any, None]: ...


def set_send_rate(queue: Queue | AsyncQueue,
                  per_second: float | None) -> Coroutine[Any, Any, None] | None:
    """At most ``per_second`` messages a second, evenly spaced, across all workers
    (``None`` or 0 removes the limit). A coroutine for an ``AsyncQueue``."""
    if per_second is None or per_second == 0:
        return queue.set_global_rate_limit(None)
    if isinstance(per_second, bool) or not isinstance(per_second, int | float) \
            or not 0 < per_second <= 1000:
        raise ValueError(f"per_second must be a number in (0, 1000], got {per_second!r}")
    return queue.set_global_rate_limit(1, 1 / per_second)
