"""Jobs: one job's fields and the operations on it.

:class:`Job` is what ``Queue`` returns and plain ``def`` processors get: its
methods are plain calls. :class:`AsyncJob` is what ``AsyncQueue`` returns and
``async def`` processors get: the same methods, as coroutines. Both share
:class:`JobBase` (the fields) and every operation is one plan, so they cannot
drift apart. ``isinstance(job, Job)`` is true for both (``AsyncJob`` is
registered as a virtual subclass), and ``Job(binding, ...)`` with an asyncio
binding returns an ``AsyncJob``; :func:`make_job` says so in its type.

Inside a worker the job also carries its lock token, so its writes
(progress, logs, data) are refused once the worker has lost the lock
(fencing).
"""

from __future__ import annotations

import json
import threading
from abc import ABCMeta
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any, TypeVar, cast

from . import _ops
from ._keys import QueueKeys
from ._plan import Plan
from .errors import JobFailedError, JobNotFoundError
from .options import Duration, duration_ms, encode_json

T = TypeVar("T")
R = TypeVar("R")
Runner = Callable[[Plan[Any]], Any]


@dataclass
class Binding:
    """How jobs reach Redis: the queue's keys, its clock and a plan runner.

    ``run`` returns the plan's result (sync) or an awaitable of it (async).
    ``on_progress`` is the worker's hook for its local ``progress`` event.
    """

    keys: QueueKeys
    clock: _ops.Clock
    run: Runner
    is_async: bool
    on_progress: Callable[[Any, Any], None] | None = None
    #: Runner for plans with blocking commands (XREAD BLOCK): they must not
    #: hold up a shared pipelined connection. Defaults to ``run``.
    run_blocking: Runner | None = None


_UNSET: Any = object()
_LAZY = ("opts", "progress", "return_value", "stacktrace", "timestamp", "processed_on",
         "finished_on", "attempts_started", "stalled_counter", "delay", "priority")


def _ms_to_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(int(float(value)) / 1000, tz=timezone.utc)
    except ValueError:
        return None


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(float(value)) if value else default
    except ValueError:
        return default


def _then(plan: Plan[T], after: Callable[[T], R]) -> Plan[R]:
    """``plan``, then ``after`` applied to its result (still one plan)."""
    result = yield from plan
    return after(result)


class JobBase:
    """A job as stored in Redis: the fields shared by :class:`Job` and :class:`AsyncJob`.

    Attributes (read from the job hash when the object was made; call
    ``get_state()`` or ``Queue.get_job()`` for fresh values):

    - ``id``, ``name``, ``data``, ``queue_name``
    - ``opts``: the stored options in BullMQ's encoding (camelCase, ms)
    - ``progress``, ``return_value``, ``failed_reason``, ``stacktrace``
    - ``attempts_made`` (finished attempts), ``attempts_started``,
      ``stalled_counter``
    - ``timestamp``, ``processed_on``, ``finished_on``: UTC datetimes
    - ``delay`` (seconds), ``priority``
    """

    def __init__(self, binding: Binding, job_id: str, fields: dict[str, str],
                 token: str | None = None, data: Any = _UNSET) -> None:
        self._binding = binding
        self._token = token
        self.cancel_reason: str | None = None
        self.cancel_remove = False
        self.id = job_id
        self.queue_name = binding.keys.name
        self._set_fields(fields, data)

    def _load(self, fields: dict[str, str]) -> None:
        """Take fresh fields read from Redis."""
        for name in _LAZY:  # computed again from the new fields on first use
            self.__dict__.pop(name, None)
        self._set_fields(fields, _UNSET)

    def _set_fields(self, fields: dict[str, str], data: Any) -> None:
        self.fields = fields
        self.name = fields.get("name", "")
        #: Why the stored job cannot be processed (data or opts not valid JSON).
        self.corruption: str | None = None
        self.group: str | None = fields.get("gid")
        if data is not _UNSET:
            # The producer's own job, just added: valid, nothing to parse, and
            # none of the fields a worker or a scheduler writes (adds are hot).
            self.data: Any = data
            self.failed_reason: str | None = None
            self.attempts_made = 0
            self.processed_by: str | None = None
            self.deferred_failure: str | None = None
            self.scheduler_id: str | None = None
            return
        # Read from Redis: check it now.
        self.data = self._json("data", {})
        self.opts = self._decode_opts()
        self.failed_reason = fields.get("failedReason")
        self.attempts_made = _int(fields.get("atm"))
        self.processed_by = fields.get("pb")
        self.deferred_failure = fields.get("defa")
        self.scheduler_id = fields.get("rjk")

    def _json(self, field: str, default: Any) -> Any:
        value = self.fields.get(field)
        if value is None or value == "":
            return default
        try:
            return json.loads(value)
        except ValueError as exc:
            if self.corruption is None:
                self.corruption = f"corrupt job: field {field!r} is not valid JSON ({exc})"
            return value

    def _decode_opts(self) -> dict[str, Any]:
        opts = self._json("opts", {})
        if not isinstance(opts, dict):
            self.corruption = self.corruption or "corrupt job: field 'opts' is not a JSON object"
            return {}
        return opts

    @cached_property
    def opts(self) -> dict[str, Any]:
        """The stored options in BullMQ's encoding (camelCase, ms)."""
        return self._decode_opts()

    # Fields most processors never read are decoded on first use.
    @cached_property
    def attempts_started(self) -> int:
        """How many times the job was started (moved to active)."""
        return _int(self.fields.get("ats"))

    @cached_property
    def stalled_counter(self) -> int:
        """How many times the job was found stalled and moved back."""
        return _int(self.fields.get("stc"))

    @cached_property
    def delay(self) -> float:
        """The job's delay in seconds (0 when it was not delayed)."""
        return _int(self.fields.get("delay")) / 1000

    @cached_property
    def priority(self) -> int:
        """The job's priority (0 = none; lower numbers run first)."""
        return _int(self.fields.get("priority"))

    @cached_property
    def progress(self) -> Any:
        """The job's progress (a number or any JSON value; 0 when unset)."""
        return _ops.decode_json(self.fields.get("progress"), 0)

    @cached_property
    def return_value(self) -> Any:
        """The processor's return value (``None`` until completed)."""
        return _ops.decode_json(self.fields.get("returnvalue"))

    @cached_property
    def stacktrace(self) -> list[str]:
        """Stack traces of the failed attempts, oldest first."""
        trace = _ops.decode_json(self.fields.get("stacktrace"), [])
        return trace if isinstance(trace, list) else [str(trace)]

    @cached_property
    def timestamp(self) -> datetime | None:
        """When the job was added (UTC)."""
        return _ms_to_datetime(self.fields.get("timestamp"))

    @cached_property
    def processed_on(self) -> datetime | None:
        """When the current or last attempt started (UTC)."""
        return _ms_to_datetime(self.fields.get("processedOn"))

    @cached_property
    def finished_on(self) -> datetime | None:
        """When the job completed or finally failed (UTC)."""
        return _ms_to_datetime(self.fields.get("finishedOn"))

    @cached_property
    def cancel_requested(self) -> threading.Event:
        """Set when ``Queue.cancel_job`` asked the worker to stop this job; a ``def``
        processor can poll ``job.cancel_requested.is_set()``."""
        return threading.Event()

    def __repr__(self) -> str:
        return f"<Job {self.queue_name}:{self.id} name={self.name!r}>"

    @property
    def attempts(self) -> int:
        """Total attempts allowed (``opts.attempts``, at least 1)."""
        value = self.opts.get("attempts")
        return max(int(value), 1) if isinstance(value, int | float) else 1

    @property
    def timeout(self) -> float | None:
        """The per-attempt time limit in seconds (``timeout`` option), if any."""
        value = self.opts.get("pqTimeout")
        return value / 1000 if isinstance(value, int | float) and value > 0 else None

    @property
    def lock_token(self) -> str | None:
        """The worker's lock token while the job is being processed by it."""
        return self._token

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary of the job."""
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d else None
        return {
            "id": self.id, "name": self.name, "data": self.data, "opts": self.opts,
            "progress": self.progress, "attempts_made": self.attempts_made,
            "attempts_started": self.attempts_started, "return_value": self.return_value,
            "failed_reason": self.failed_reason, "stacktrace": self.stacktrace,
            "timestamp": iso(self.timestamp), "processed_on": iso(self.processed_on),
            "finished_on": iso(self.finished_on), "delay": self.delay,
            "priority": self.priority,
        }

    # --- plans of the operations (shared by Job and AsyncJob) -------------------

    def _update(self, op: str, **params: Any) -> Plan[Any]:
        keys, clock = self._binding.keys, self._binding.clock
        return _ops.simple("updateJob", keys, clock, op=op, job_id=self.id, id=self.id,
                           lockToken=self._token, **params)

    def _progress_plan(self, value: Any) -> Plan[None]:
        encoded = encode_json(value, "progress")

        def done(_: Any) -> None:
            self.progress = value
            if self._binding.on_progress is not None:
                self._binding.on_progress(self, value)
        return _then(self._update("update_progress", progress=encoded), done)

    def _log_plan(self, line: str) -> Plan[int]:
        keep = self.opts.get("kl")
        return _then(self._update("log", log=str(line),
                                  keepLogs=keep if isinstance(keep, int) else None), int)

    def _logs_plan(self, start: int, end: int) -> Plan[list[str]]:
        return _ops.get_logs(self._binding.keys, self.id, start, end)

    def _data_plan(self, data: Any) -> Plan[None]:
        encoded = encode_json(data, "data")

        def done(_: Any) -> None:
            self.data = json.loads(encoded)
        return _then(self._update("update_data", data=encoded), done)

    def _state_plan(self) -> Plan[str]:
        return _ops.get_state(self._binding.keys, self._binding.clock, self.id)

    def _remove_plan(self) -> Plan[bool]:
        plan = _ops.simple("removeJob", self._binding.keys, self._binding.clock,
                           op="remove", job_id=self.id, id=self.id)
        return _then(plan, bool)

    def _retry_plan(self, state: str, reset_attempts: bool) -> Plan[None]:
        plan = _ops.simple("reprocessJobs", self._binding.keys, self._binding.clock,
                           op="retry", job_id=self.id, state=state, id=self.id,
                           resetAttempts=reset_attempts)
        return _then(plan, _nothing)

    def _promote_plan(self) -> Plan[None]:
        plan = _ops.simple("promote", self._binding.keys, self._binding.clock,
                           op="promote", job_id=self.id, id=self.id)
        return _then(plan, _nothing)

    def _delayed_plan(self, until: datetime | Duration) -> Plan[None]:
        clock = self._binding.clock
        if isinstance(until, datetime):
            if until.tzinfo is None:
                until = until.replace(tzinfo=timezone.utc)
            due = int(until.timestamp() * 1000)
        else:
            due = clock.now_ms() + duration_ms(until, "until")
        plan = _ops.simple("retryJob", self._binding.keys, clock, op="move_to_delayed",
                           job_id=self.id, id=self.id, lockToken=self._token,
                           dueMs=max(due, clock.now_ms() + 1))

        def done(_: Any) -> None:
            self._token = None  # the worker must not finish it again
            self.delay = max(due - clock.now_ms(), 0) / 1000
        return _then(plan, done)

    def _wait_plan(self, timeout: float | timedelta | None) -> Plan[Any]:
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout

        def done(outcome: tuple[str, dict[str, str]]) -> Any:
            state, fields = outcome
            if state == "unknown":
                raise JobNotFoundError(f"job {self.id!r} does not exist", self.id)
            self._load(fields)
            if state == "failed":
                raise JobFailedError(f"job {self.id!r} failed: {self.failed_reason}",
                                     self.id, self.failed_reason)
            return self.return_value
        return _then(_ops.wait_finished(self._binding.keys, self.id, seconds), done)

    def _blocking_runner(self) -> Runner:
        return self._binding.run_blocking or self._binding.run


def _nothing(_: Any) -> None:
    return None


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

    def get_state(self) -> str:
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

    async def get_state(self) -> str:
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


Job.register(AsyncJob)


def make_job(binding: Binding, job_id: str, fields: dict[str, str], token: str | None = None,
             data: Any = _UNSET) -> Job | AsyncJob:
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
