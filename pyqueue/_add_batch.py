"""``AsyncQueue.add``'s batching: the adds that are pending together in one
event-loop iteration (an ``asyncio.gather`` of adds, concurrent requests of a
web app) go to Redis as one addJob call, not one call each.

A lone add does not wait for company: when nothing is pending or in flight,
``AsyncQueue.add`` sends it at once, as a plain one-job call. Adds made while
a call is in flight wait for the end of the current loop iteration
(``loop.call_soon``, no timer) and go together, in the order they were made, so
job ids, events and deduplication come out as if they had been awaited one
after the other. (Sending every add at the end of its iteration instead cost a
lone sequential add one more loop turn: about 8 us more Python CPU and latency
per add, measured.) Each
caller gets its own job, or its own error: a Redis error while adding one job
(a damaged key) fails that caller only (see ``each`` in lua/addJob.lua); a
call that fails whole (connection lost, out of memory) fails its callers, each
with its own copy of the error. A caller that gives up (is cancelled) before
its add was sent is left out of the batch.
"""

from __future__ import annotations

import asyncio
import copy
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _ops_add
from ._runner import AsyncTransport, drive_async
from .errors import RedisError
from .job import Binding, JobBase
from .options import EncodedJob

if TYPE_CHECKING:
    from ._queue_core import QueueCore

J = TypeVar("J", bound=JobBase)


class AddBatcher(Generic[J]):
    """The adds of one ``AsyncQueue`` waiting for the end of the loop iteration."""

    __slots__ = ("_binding", "_core", "_pending", "_transport", "inflight")

    def __init__(self, core: QueueCore[J], binding: Binding, transport: AsyncTransport) -> None:
        self._core = core
        self._binding = binding
        self._transport = transport
        self._pending: list[tuple[EncodedJob, asyncio.Future[J]]] = []
        #: Add calls sent and not answered yet (``AsyncQueue.add`` counts the
        #: ones it sends itself).
        self.inflight = 0

    def idle(self) -> bool:
        """Nothing pending and nothing in flight: an add now is alone, and is best
        sent at once by its caller (no batch, no wait for the loop iteration's end)."""
        return not self._pending and not self.inflight

    def add(self, job: EncodedJob) -> asyncio.Future[J]:
        """Queue ``job`` (encoded and validated) for this iteration's call; a
        future of its ``Job``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[J] = loop.create_future()
        pending = self._pending
        pending.append((job, future))
        if len(pending) == 1:
            loop.call_soon(self._flush)
        return future

    def _settle_one(self, future: asyncio.Future[Any], value: Any,
                    error: BaseException | None) -> None:
        self.inflight -= 1
        _settle_one(future, value, error)

    def _flush(self) -> None:
        pending = [entry for entry in self._pending if not entry[1].done()]
        self._pending = []
        if len(pending) == 1:  # alone: the plain one-job add
            job, future = pending[0]
            self.inflight += 1
            drive_async(self._transport, self._core.add_one_plan(job, self._binding),
                        partial(self._settle_one, future), immediate=True)
        elif pending:
            core = self._core
            jobs = [job for job, _ in pending]
            self.inflight += 1
            drive_async(self._transport, _ops_add.add_each(core.keys, core.clock, jobs),
                        partial(self._settle_each, pending), immediate=True)

    def _settle_each(self, pending: list[tuple[EncodedJob, asyncio.Future[J]]],
                     outcomes: list[_ops_add.Added | RedisError] | None,
                     error: BaseException | None) -> None:
        self.inflight -= 1
        if outcomes is None:  # the whole plan failed: every caller hears it
            assert error is not None
            for i, (_, future) in enumerate(pending):
                _settle_one(future, None, error if i == 0 else _own_copy(error))
            return
        core, binding = self._core, self._binding
        raised: set[int] = set()  # a chunk's failure is one error for all its jobs
        for (job, future), outcome in zip(pending, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, RedisError):
                future.set_exception(_own_copy(outcome) if id(outcome) in raised else outcome)
                raised.add(id(outcome))
            else:
                future.set_result(core.job_from(job, outcome, binding))


def _settle_one(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(value)
    elif isinstance(error, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(error)


def _own_copy(error: BaseException) -> BaseException:
    """A copy of ``error`` for one more caller (each raises its own, with its own
    traceback), same class, message, code and cause."""
    try:
        again = copy.copy(error)
    except Exception:  # an exception class that cannot be rebuilt: share it
        return error
    again.__cause__ = error.__cause__
    return again
