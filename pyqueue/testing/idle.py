"""``run_until_idle``: run a real worker on a queue until nothing is left to do, for tests."""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import ConfigurationError, JobFailedError
from ..job import JobBase
from ..worker import Worker, WorkerHooks
from ..worker._executors import Processor


class _Finished(WorkerHooks):
    """Collects the jobs that finished for good (completed, or failed with no
    retry left) and the errors of those that failed."""

    def __init__(self) -> None:
        self.jobs: list[JobBase] = []
        self.errors: list[tuple[JobBase, BaseException]] = []

    def on_completed(self, job: JobBase, result: Any) -> None:
        self.jobs.append(job)

    def on_failed(self, job: JobBase, error: BaseException, will_retry: bool) -> None:
        if not will_retry:
            self.jobs.append(job)
            self.errors.append((job, error))


async def run_until_idle_async(queue_name: str, processor: Processor, *, connection: Any,
                               raise_on_failure: bool = True, timeout: float = 30,
                               **worker_options: Any) -> list[JobBase]:
    """The coroutine form of :func:`run_until_idle`, for tests that already run
    an event loop (``pytest-asyncio``)."""
    finished = _Finished()
    hooks = [*worker_options.pop("hooks", []), finished]
    worker = Worker(queue_name, processor, connection=connection, autorun=False,
                    hooks=hooks, **worker_options)
    try:
        await worker.start(burst=True)
        await asyncio.wait_for(worker.wait_closed(), timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"queue {queue_name!r} was not idle after {timeout:g} s "
                           f"({len(finished.jobs)} jobs finished); is a job delayed "
                           "into the future or stuck active?") from None
    finally:
        await worker.close(force=True)
    if raise_on_failure and finished.errors:
        job, error = finished.errors[0]
        raise JobFailedError(f"job {job.id!r} ({job.name}) failed: {error}", job.id) \
            from error
    return finished.jobs


def run_until_idle(queue_name: str, processor: Processor, *, connection: Any,
                   raise_on_failure: bool = True, timeout: float = 30,
                   **worker_options: Any) -> list[JobBase]:
    """Run a real :class:`~pyqueue.Worker` on ``queue_name`` until no job is
    waiting, active, prioritized or due, and return the jobs that finished
    (completed, or failed with no attempt left), in the order they finished.

    The processor runs exactly as in production: the real Lua scripts on a
    real Redis (``connection``: a URL, e.g. ``pyqueue.testing.RedisServer().url``),
    with retries, backoff and delays as the jobs ask. A job delayed into the
    future (a ``delay``, or a retry waiting for its backoff) is not due, so it
    is left delayed and not returned: give test jobs no backoff, or promote
    them (``queue.promote_jobs()``) and run again. With ``raise_on_failure`` the first
    job that failed for good raises :class:`~pyqueue.JobFailedError`, chained
    to the processor's exception. ``worker_options`` go to ``Worker`` (e.g.
    ``concurrency``, ``prefix``). Raises ``TimeoutError`` after ``timeout``
    seconds. Inside a running event loop use :func:`run_until_idle_async`.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise ConfigurationError("run_until_idle() blocks and cannot run inside an event loop; "
                                 "use 'await run_until_idle_async(...)'")
    return asyncio.run(run_until_idle_async(
        queue_name, processor, connection=connection, raise_on_failure=raise_on_failure,
        timeout=timeout, **worker_options))
