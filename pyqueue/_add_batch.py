"""``AsyncQueue.add``'s batching: adds made while another add of the queue is
on its way to Redis (an ``asyncio.gather`` of adds, concurrent requests of a
web app) go to Redis together, as one addJob call, instead of one call each.

The rules:

- A lone add does not wait for company: when nothing is pending or in flight,
  ``AsyncQueue.add`` sends it at once, as the plain one-job call (sending every
  add at the end of its loop iteration instead cost a lone sequential add two
  more loop turns: about 8 us more Python CPU and latency per add, measured).
- At most one add call of the queue is in flight. Adds made meanwhile wait,
  and go as one call when it is answered (or at the end of the loop iteration
  they were made in, when nothing is in flight then). So adds reach Redis in
  the order they were made, on any connection (a pool, a cluster client), and
  job ids, events and deduplication come out as if they had been awaited one
  after the other. No timer is involved.
- Right after a batch is answered, its callers typically add again in the next
  loop iteration: those adds are batched too (at the end of that iteration)
  rather than the first of them going alone and the rest waiting for it.
- Each caller gets its own job, or its own error: a Redis error while adding
  one job (a damaged key) fails that caller only (``each`` in lua/addJob.lua);
  a call that fails whole (connection lost, out of memory) fails all its
  callers, each with its own copy of the error. A caller that gives up (is
  cancelled) before its add was sent is left out.
"""

from __future__ import annotations

import asyncio
import copy
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _ops_add
from ._runner import AsyncTransport, drive_async, settle_future
from .errors import RedisError
from .job import Binding, JobBase
from .options import EncodedJob

if TYPE_CHECKING:
    from ._queue_core import QueueCore

J = TypeVar("J", bound=JobBase)
Pending = list[tuple[EncodedJob, "asyncio.Future[J]"]]


class AddBatcher(Generic[J]):
    """The adds of one ``AsyncQueue`` waiting for the add call in flight."""

    __slots__ = ("_binding", "_burst", "_core", "_pending", "_scheduled", "_transport",
                 "inflight")

    def __init__(self, core: QueueCore[J], binding: Binding, transport: AsyncTransport) -> None:
        self._core = core
        self._binding = binding
        self._transport = transport
        self._pending: Pending[J] = []
        self._scheduled = False  # a _flush at the end of this loop iteration
        self._burst = False  # a batch was just answered: its callers add again soon
        #: Add calls sent and not answered: 0 or 1 (``AsyncQueue.add`` counts
        #: the one it sends itself, then calls :meth:`call_done`).
        self.inflight = 0

    def idle(self) -> bool:
        """Whether an add made now is alone, to be sent at once by its caller."""
        return not self.inflight and not self._pending and not self._burst

    def add(self, job: EncodedJob) -> asyncio.Future[J]:
        """Queue ``job`` (encoded and validated) for the next add call; a future
        of its ``Job``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[J] = loop.create_future()
        self._pending.append((job, future))
        if not self.inflight and not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def call_done(self) -> None:
        """An add call was answered: send what accumulated meanwhile."""
        self.inflight -= 1
        if not self.inflight and self._pending:
            self._flush()

    def _flush(self) -> None:
        self._scheduled = False
        if self.inflight:
            return  # sent when the call in flight is answered (call_done)
        pending = [entry for entry in self._pending if not entry[1].done()]
        self._pending = []
        if not pending:
            return
        self.inflight += 1
        try:
            if len(pending) == 1:  # alone after all: the plain one-job add
                job, future = pending[0]
                drive_async(self._transport, self._core.add_one_plan(job, self._binding),
                            partial(self._settle_one, future), immediate=True)
            else:
                core = self._core
                plan = _ops_add.add_each(core.keys, core.clock, [job for job, _ in pending])
                drive_async(self._transport, plan, partial(self._settle_each, pending),
                            immediate=True)
        except BaseException as exc:  # could not even be sent: nothing is in flight
            self._settle_each(pending, None, exc)
            if not isinstance(exc, Exception):
                raise

    def _settle_one(self, future: asyncio.Future[Any], value: Any,
                    error: BaseException | None) -> None:
        settle_future(future, value, error)
        self.call_done()

    def _settle_each(self, pending: Pending[J],
                     outcomes: list[_ops_add.Added | RedisError] | None,
                     error: BaseException | None) -> None:
        if outcomes is None:  # the whole plan failed: every caller hears it
            assert error is not None
            for i, (_, future) in enumerate(pending):
                settle_future(future, None, error if i == 0 else _own_copy(error))
        else:
            core, binding = self._core, self._binding
            raised: set[int] = set()  # a chunk's failure is one error for all its jobs
            for (job, future), outcome in zip(pending, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, RedisError):
                    future.set_exception(_own_copy(outcome) if id(outcome) in raised
                                         else outcome)
                    raised.add(id(outcome))
                else:
                    try:
                        found = core.job_from(job, outcome, binding)
                    except Exception as exc:  # that caller's alone; the others go on
                        future.set_exception(exc)
                    else:
                        future.set_result(found)
        # The callers resume in the next loop iteration; their next adds join
        # what is pending, sent at that iteration's end (these callbacks are
        # queued after theirs).
        self.inflight -= 1
        self._burst = True
        loop = asyncio.get_running_loop()
        loop.call_soon(self._end_burst)
        if self._pending and not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)

    def _end_burst(self) -> None:
        self._burst = False


def _own_copy(error: BaseException) -> BaseException:
    """A copy of ``error`` for one more caller (each raises its own, with its own
    traceback), same class, message, code and cause."""
    try:
        again = copy.copy(error)
    except Exception:  # an exception class that cannot be rebuilt: share it
        return error
    again.__cause__ = error.__cause__
    return again
