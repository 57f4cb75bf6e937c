"""Time control for tests: delays, backoff and schedulers without sleeping.

A :class:`TimeTravel` moves a queue's delayed jobs forward in time: each
:meth:`~TimeTravel.advance` adds to the travelled time and promotes every
delayed job that would be due by then (a ``delay``, a retry waiting for its
backoff, a job scheduler's next run). The jobs then run on the real worker
and the real scripts, at once. Nothing else is faked: locks, stalled checks
and the timestamps stored with jobs keep the Redis server's real clock.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import Generic, TypeVar, overload

from .. import _ops
from .._async_queue import AsyncQueue
from .._duration import duration_ms
from ..queue import Queue

__all__ = ["TimeTravel", "advance"]

Q = TypeVar("Q", Queue, AsyncQueue)


class TimeTravel(Generic[Q]):
    """Travelled time for one queue (a ``Queue`` or an ``AsyncQueue``)::

        travel = TimeTravel(queue)
        queue.add("reminder", {}, delay=3600)
        travel.advance(3600)          # the reminder is waiting now
        run_until_idle(queue.name, remind, connection=url)

    With an ``AsyncQueue``, ``await travel.advance(...)``. The travelled time
    adds up (``advance(30)`` twice promotes a job delayed by 60 s), counted
    from the real time of each call.
    """

    def __init__(self, queue: Q) -> None:
        if not isinstance(queue, Queue | AsyncQueue):
            raise TypeError(f"TimeTravel needs a Queue or an AsyncQueue, got "
                            f"{type(queue).__name__}")
        self.queue: Q = queue
        #: Milliseconds travelled so far.
        self.travelled_ms = 0

    @overload
    def advance(self: TimeTravel[Queue], seconds: float | timedelta) -> list[str]: ...
    @overload
    def advance(self: TimeTravel[AsyncQueue], seconds: float | timedelta
                ) -> Awaitable[list[str]]: ...
    def advance(self, seconds: float | timedelta) -> list[str] | Awaitable[list[str]]:
        """Travel ``seconds`` more; promote what is due by then. Returns the
        promoted job ids (an awaitable of them for an ``AsyncQueue``)."""
        self.travelled_ms += duration_ms(seconds, "seconds")
        plan = _ops.promote_due(self.queue._core.keys, self.queue._core.clock,
                                self.travelled_ms)
        if isinstance(self.queue, AsyncQueue):
            return self.queue._run(plan)
        ids: list[str] = self.queue._run(plan)
        return ids


@overload
def advance(queue: Queue, seconds: float | timedelta) -> list[str]: ...
@overload
def advance(queue: AsyncQueue, seconds: float | timedelta) -> Awaitable[list[str]]: ...
def advance(queue: Queue | AsyncQueue, seconds: float | timedelta
            ) -> list[str] | Awaitable[list[str]]:
    """Promote the delayed jobs of ``queue`` due within ``seconds`` from now
    (a one-off :class:`TimeTravel`); returns their ids (awaitable for an
    ``AsyncQueue``)."""
    if isinstance(queue, AsyncQueue):
        return TimeTravel(queue).advance(seconds)
    return TimeTravel(queue).advance(seconds)
