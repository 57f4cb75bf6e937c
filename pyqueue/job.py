"""``Job`` and ``AsyncJob``: the operations on one job, as plain calls or as coroutines.

:class:`Job` is what ``Queue`` returns and plain ``def`` processors get: its
methods are plain calls. :class:`AsyncJob` is what ``AsyncQueue`` returns and
``async def`` processors get: the same methods, as coroutines. Both share
:class:`JobBase` (the fields, in ``_job_base``) and every operation is one plan, so they cannot
drift apart. ``isinstance(job, Job)`` is true for both (``AsyncJob`` is
registered as a virtual subclass), and ``Job(binding, ...)`` with an asyncio
binding returns an ``AsyncJob``; :func:`make_job` says so in its type.

Inside a worker the job also carries its lock token, so its writes
(progress, logs, data) are refused once the worker has lost the lock
(fencing).
"""

from __future__ import annotations

import inspect
from abc import ABCMeta
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, cast

from ._job_base import UNSET, Binding, JobBase
from ._plan import Plan
from .errors import DelayedError
from .options import Duration
from .states import JobState

T = TypeVar("T")


class Job(JobBase, metaclass=ABCMeta):
    """A job whose methods are plain calls (from ``Queue``, in ``def``
    processors). See :class:`JobBase` for its attributes.

    ``Job(binding, ...)`` with an asyncio binding returns an :class:`AsyncJob`
    (kept for callers that predate it; prefer :func:`make_job`).
    """

    def __new__(cls, binding: Binding | None = None, *args: Any, **kwargs: Any) -> Job:
        if cls is Job and binding is not None and binding.is_async:
            return cast(Job, AsyncJob(binding, *args, **kwargs))
        return super().__new__(cls)

    def _run(self, plan: Plan[T]) -> T:
        result: T = self._binding.run(plan)
        return result

    def update_progress(self, value: Any) -> None:
        """Store progress (a number or any JSON value) and emit a ``progress`` event."""
        self._run(self._progress_plan(value))

    def log(self, line: str) -> int:
        """Append a line to the job's log; returns the log's length."""
        return self._run(self._log_plan(line))

    def get_logs(self, start: int = 0, end: int = -1) -> list[str]:
        """The job's log lines."""
        return self._run(self._logs_plan(start, end))

    def update_data(self, data: Any) -> None:
        """Replace the job's data (JSON)."""
        self._run(self._data_plan(data))

    def get_state(self) -> JobState:
        """The job's current state (``waiting``, ``active``, ``completed``, ...)."""
        return self._run(self._state_plan())

    def remove(self) -> bool:
        """Remove the job; ``False`` when it is locked by a worker (running)."""
        return self._run(self._remove_plan())

    def retry(self, state: str = "failed", *, reset_attempts: bool = False) -> None:
        """Move this failed (or completed) job back to be processed."""
        self._run(self._retry_plan(state, reset_attempts))

    def promote(self) -> None:
        """Make this delayed job ready now."""
        self._run(self._promote_plan())

    def change_priority(self, priority: int) -> None:
        """Give this waiting or delayed job a new priority (0 none, 1 the highest): a
        ready job moves to its new place, last of that priority. Raises
        ``JobStateError`` for a job that is active, finished or waiting for children."""
        self._run(self._priority_plan(priority))

    def change_delay(self, delay: Duration) -> None:
        """Make this delayed job due ``delay`` seconds from now (``JobStateError``
        when it is not delayed)."""
        self._run(self._change_delay_plan(delay))

    def move_to_delayed(self, until: datetime | Duration) -> None:
        """From inside a processor: move this job to delayed, then raise ``DelayedError``.

        ``until`` is an aware ``datetime`` or seconds from now. The attempt
        does not count as failed.
        """
        self._run(self._delayed_plan(until))

    def wait_until_finished(self, timeout: float | timedelta | None = None) -> Any:
        """Wait for the job to complete; returns its return value.

        Raises ``JobFailedError`` if it failed, ``TimeoutError`` after ``timeout``.
        """
        result: Any = self._blocking_runner()(self._wait_plan(timeout))
        return result

    # --- flows (see docs/flows.md) ---------------------------------------------

    def get_children_values(self) -> dict[str, Any]:
        """Return values of the completed children, keyed by child key
        (``"bull:payments:12"``)."""
        return self._run(self._children_values_plan())

    def get_dependencies(self) -> dict[str, Any]:
        """The children by outcome: ``processed`` (key -> value), ``unprocessed``
        (keys), ``failed`` (key -> reason: failed with ``fail_parent_on_failure``),
        ``ignored`` (key -> reason: failed with ``ignore_dependency_on_failure`` or
        ``continue_parent_on_failure``)."""
        return self._run(self._dependencies_plan())

    def get_dependencies_count(self) -> dict[str, int]:
        """How many children are ``processed``, ``unprocessed``, ``failed``, ``ignored``."""
        return self._run(self._dependencies_count_plan())

    def get_ignored_children_failures(self) -> dict[str, str]:
        """Failed reasons of the children whose failure was ignored (child key ->
        reason; ``ignore_dependency_on_failure``, ``continue_parent_on_failure``)."""
        return self._run(self._ignored_failures_plan())

    def remove_child_dependency(self) -> bool:
        """This child stops being a dependency of its parent (which moves on if it
        waited for it last); ``False`` when it has no parent waiting for it."""
        return self._run(self._detach_plan())

    def move_to_waiting_children(self) -> bool:
        """From inside a processor: wait for the children this job added (no worker
        slot held). ``True``: it waits now; raise ``WaitingChildrenError`` and the
        processor runs again once they finished. ``False``: none is unfinished."""
        return self._run(self._waiting_children_plan())

    def step(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """A durable step: ``fn(*args)`` runs at most once per job with success;
        later runs of the processor get its stored (JSON) result back."""
        found, value = self._stored_step(name)
        if found:
            return value
        value = fn(*args)
        self._run(self._save_step_plan(name, value))
        return value

    def sleep(self, name: str, seconds: Duration) -> None:
        """A durable sleep: the job waits as delayed (raising ``DelayedError``, which
        the processor must let through) and runs again when it is due; once
        passed, later runs go straight on."""
        due, save = self._sleep_due(name, seconds)
        if due is None:
            return
        if save:
            self._run(self._save_step_plan(name, {"until": due}))
        self.move_to_delayed(datetime.fromtimestamp(due / 1000, tz=timezone.utc))
        raise DelayedError(f"step {name!r} sleeps until {due} ms")


class AsyncJob(JobBase):
    """A job whose methods are coroutines (from ``AsyncQueue``, in ``async def``
    processors): the same methods as :class:`Job`. ``isinstance(job, Job)``
    is true for it too."""

    async def _run(self, plan: Plan[T]) -> T:
        result: T = await self._binding.run(plan)
        return result

    async def update_progress(self, value: Any) -> None:
        """Store progress (a number or any JSON value) and emit a ``progress`` event."""
        await self._run(self._progress_plan(value))

    async def log(self, line: str) -> int:
        """Append a line to the job's log; returns the log's length."""
        return await self._run(self._log_plan(line))

    async def get_logs(self, start: int = 0, end: int = -1) -> list[str]:
        """The job's log lines."""
        return await self._run(self._logs_plan(start, end))

    async def update_data(self, data: Any) -> None:
        """Replace the job's data (JSON)."""
        await self._run(self._data_plan(data))

    async def get_state(self) -> JobState:
        """The job's current state (``waiting``, ``active``, ``completed``, ...)."""
        return await self._run(self._state_plan())

    async def remove(self) -> bool:
        """Remove the job; ``False`` when it is locked by a worker (running)."""
        return await self._run(self._remove_plan())

    async def retry(self, state: str = "failed", *, reset_attempts: bool = False) -> None:
        """Move this failed (or completed) job back to be processed."""
        await self._run(self._retry_plan(state, reset_attempts))

    async def promote(self) -> None:
        """Make this delayed job ready now."""
        await self._run(self._promote_plan())

    async def change_priority(self, priority: int) -> None:
        """See :meth:`Job.change_priority`."""
        await self._run(self._priority_plan(priority))

    async def change_delay(self, delay: Duration) -> None:
        """See :meth:`Job.change_delay`."""
        await self._run(self._change_delay_plan(delay))

    async def move_to_delayed(self, until: datetime | Duration) -> None:
        """From inside a processor: move this job to delayed, then raise ``DelayedError``
        (see :meth:`Job.move_to_delayed`)."""
        await self._run(self._delayed_plan(until))

    async def wait_until_finished(self, timeout: float | timedelta | None = None) -> Any:
        """Wait for the job to complete; returns its return value.

        Raises ``JobFailedError`` if it failed, ``TimeoutError`` after ``timeout``.
        """
        result: Any = await self._blocking_runner()(self._wait_plan(timeout))
        return result

    # --- flows (see docs/flows.md and Job's methods) ---------------------------

    async def get_children_values(self) -> dict[str, Any]:
        """Return values of the completed children, keyed by child key."""
        return await self._run(self._children_values_plan())

    async def get_dependencies(self) -> dict[str, Any]:
        """The children by outcome (see :meth:`Job.get_dependencies`)."""
        return await self._run(self._dependencies_plan())

    async def get_dependencies_count(self) -> dict[str, int]:
        """How many children are ``processed``, ``unprocessed``, ``failed``, ``ignored``."""
        return await self._run(self._dependencies_count_plan())

    async def get_ignored_children_failures(self) -> dict[str, str]:
        """Failed reasons of the children whose failure was ignored (see
        :meth:`Job.get_ignored_children_failures`)."""
        return await self._run(self._ignored_failures_plan())

    async def remove_child_dependency(self) -> bool:
        """This child stops being a dependency of its parent (see
        :meth:`Job.remove_child_dependency`)."""
        return await self._run(self._detach_plan())

    async def move_to_waiting_children(self) -> bool:
        """From inside a processor: wait for this job's children (see
        :meth:`Job.move_to_waiting_children`)."""
        return await self._run(self._waiting_children_plan())

    async def step(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """A durable step (see :meth:`Job.step`); ``fn`` may be a coroutine function."""
        found, value = self._stored_step(name)
        if found:
            return value
        value = fn(*args)
        if inspect.isawaitable(value):
            value = await value
        await self._run(self._save_step_plan(name, value))
        return value

    async def sleep(self, name: str, seconds: Duration) -> None:
        """A durable sleep (see :meth:`Job.sleep`)."""
        due, save = self._sleep_due(name, seconds)
        if due is None:
            return
        if save:
            await self._run(self._save_step_plan(name, {"until": due}))
        await self.move_to_delayed(datetime.fromtimestamp(due / 1000, tz=timezone.utc))
        raise DelayedError(f"step {name!r} sleeps until {due} ms")


Job.register(AsyncJob)


def make_job(binding: Binding, job_id: str, fields: dict[str, str], token: str | None = None,
             data: Any = UNSET) -> Job | AsyncJob:
    """The job for ``binding``: an :class:`AsyncJob` for an asyncio binding, else a
    :class:`Job` (what the worker gives async and ``def`` processors)."""
    if binding.is_async:
        return AsyncJob(binding, job_id, fields, token, data)
    return Job(binding, job_id, fields, token, data)


def job_from_fields(binding: Binding, job_id: str, fields: dict[str, str] | None,
                    token: str | None = None) -> Job | AsyncJob | None:
    """A job from a stored hash, or ``None`` for a missing job."""
    if not fields:
        return None
    return make_job(binding, job_id, fields, token)


__all__ = ["AsyncJob", "Binding", "Job", "JobBase", "job_from_fields", "make_job"]
