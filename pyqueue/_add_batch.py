"""``AsyncQueue.add``'s batching: the adds that are pending together in one
event-loop iteration (an ``asyncio.gather`` of adds, concurrent requests of a
web app) go to Redis as one addJob call, not one call each.

A lone add does not wait for company: it is sent at the end of the loop
iteration it was made in (``loop.call_soon``), with no timer, exactly as
before when nothing else is pending (one addJob call of one job). Adds made in
the same iteration are sent in the order they were made, so job ids, events and
deduplication come out as if they had been awaited one after the other. Each
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

    __slots__ = ("_binding", "_core", "_pending", "_transport")

    def __init__(self, core: QueueCore[J], binding: Binding, transport: AsyncTransport) -> None:
        self._core = core
        self._binding = binding
        self._transport = transport
        self._pending: list[tuple[EncodedJob, asyncio.Future[J]]] = []

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

    def _flush(self) -> None:
        pending = [entry for entry in self._pending if not entry[1].done()]
        self._pending = []
        if len(pending) == 1:  # alone: the plain one-job add
            job, future = pending[0]
            drive_async(self._transport, self._core.add_one_plan(job, self._binding),
                        partial(_settle_one, future), immediate=True)
        elif pending:
            core = self._core
            jobs = [job for job, _ in pending]
            drive_async(self._transport, _ops_add.add_each(core.keys, core.clock, jobs),
                        partial(self._settle_each, pending), immediate=True)

    def _settle_each(self, pending: list[tuple[EncodedJob, asyncio.Future[J]]],
                     outcomes: list[_ops_add.Added | RedisError] | None,
                     error: BaseException | None) -> None:
        if outcomes is None:  # the whole plan failed: every caller hears it
            assert error is not None
            for i, (_, future) in enumerate(pending):
                _settle_one(future, None, error if i == 0 else _own_copy(error))
            return
        core, binding = self._core, self._binding
        for (job, future), outcome in zip(pending, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, RedisError):
                future.set_exception(outcome)
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
