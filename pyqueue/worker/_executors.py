"""Where a processor runs (the event loop, a thread pool or child processes), behind one protocol
with timeout and cancellation.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from .._procpool import ProcessPool, child_connection
from ..connection import AsyncClient
from ..errors import JobTimeoutError
from ..job import AsyncJob, Job

if TYPE_CHECKING:  # only type checkers need it (they ship typing_extensions)
    from typing_extensions import TypeIs

#: An ``async def`` processor: it gets an :class:`AsyncJob` (its methods are coroutines).
AsyncProcessor = Callable[[AsyncJob], Awaitable[Any]]
#: A plain ``def`` processor (run in a thread or a child process): it gets a :class:`Job`.
SyncProcessor = Callable[[Job], Any]
#: What ``Worker`` accepts as its processor.
Processor = AsyncProcessor | SyncProcessor


def is_async_processor(target: Processor) -> TypeIs[AsyncProcessor]:
    """Whether ``target`` is an ``async def`` processor (else it is a ``def`` one)."""
    return inspect.iscoroutinefunction(target)


class Executor(Protocol):
    """Runs a processor on a job."""

    #: Whether cancelling the job's task stops the processor's work (a thread
    #: cannot be stopped; a coroutine or a child process can).
    interruptible: bool

    def call(self, job: Job | AsyncJob, place: Any = None) -> Awaitable[Any]:
        """Start ``job`` (in ``place``, what :meth:`place` gave, if anything);
        returns the awaitable of its result, which the job's timeout applies to."""
        ...

    async def place(self) -> Any:
        """Wait for a free place to run a job and return it (untimed: a child
        process may be starting); only awaited when :attr:`waits_for_place`."""
        ...

    #: Whether :meth:`place` must be awaited before :meth:`call` (process pools).
    waits_for_place: bool

    def close(self) -> None:
        """Release the threads or processes (running work is not waited for)."""
        ...


class AsyncExecutor:
    """An ``async def`` processor, run on the worker's event loop."""

    interruptible = True

    def __init__(self, target: AsyncProcessor) -> None:
        self._target = target

    waits_for_place = False

    def call(self, job: Job | AsyncJob, place: Any = None) -> Awaitable[Any]:
        if not isinstance(job, AsyncJob):  # the worker's binding is asyncio: cannot happen
            raise TypeError(f"an async def processor takes an AsyncJob, got {job!r}")
        return self._target(job)

    async def place(self) -> Any:
        return None

    def close(self) -> None:
        return None


class ThreadExecutor:
    """A ``def`` processor, run in a pool of ``size`` threads with the caller's
    context variables copied in."""

    interruptible = False

    def __init__(self, target: SyncProcessor, size: int, name: str) -> None:
        self._target = target
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"pyqueue-{name}")

    waits_for_place = False

    def call(self, job: Job | AsyncJob, place: Any = None) -> Awaitable[Any]:
        if isinstance(job, AsyncJob):  # the worker's binding is sync: cannot happen
            raise TypeError(f"a def processor takes a Job, got {job!r}")
        ctx = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(self._pool, ctx.run,
                                                          self._target, job)

    async def place(self) -> Any:
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ProcessExecutor:
    """A ``def`` processor, run in child processes that a cancellation kills."""

    interruptible = True

    def __init__(self, target: SyncProcessor, size: int, prefix: str, queue: str,
                 client: AsyncClient) -> None:
        self._pool = ProcessPool(target, size, prefix, queue, child_connection(client))

    waits_for_place = True

    async def place(self) -> Any:
        return await self._pool.acquire()  # a child process, idle

    def call(self, job: Job | AsyncJob, place: Any = None) -> Awaitable[Any]:
        assert place is not None, "a process executor runs a job in the child place() gave"
        return self._pool.run(place, job.id, job.fields, job.lock_token, job._left_active)

    def close(self) -> None:
        self._pool.close()


async def invoke(executor: Executor, job: Job | AsyncJob) -> Any:
    """Run ``job`` on ``executor`` within the job's ``timeout`` (``JobTimeoutError``).
    A ``def`` processor that returns an awaitable has it awaited."""
    place = await executor.place() if executor.waits_for_place else None  # untimed
    call = executor.call(job, place)
    timeout = job.timeout
    if timeout is None:
        result = await call
    else:
        try:
            result = await asyncio.wait_for(call, timeout)
        except asyncio.TimeoutError:
            raise JobTimeoutError(f"job {job.id} timed out after {timeout} s") from None
    if result is not None and inspect.isawaitable(result):
        result = await result
    return result
