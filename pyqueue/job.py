"""``Job``: one job's fields and the operations on it.

A job's methods are plain calls on jobs from ``Queue`` and inside plain
``def`` processors, and awaitables on jobs from ``AsyncQueue`` and inside
``async def`` processors: the job carries the binding (sync or async) of
whoever created it. Inside a worker the job also carries its lock token, so
its writes (progress, logs, data) are refused once the worker has lost the
lock (fencing).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from . import _ops
from ._keys import QueueKeys
from ._plan import Plan
from .errors import JobFailedError, JobNotFoundError
from .options import Duration, duration_ms, encode_json

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
    on_progress: Callable[[Job, Any], None] | None = None
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


class Job:
    """A job as stored in Redis.

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
        if data is not _UNSET:  # the producer's own job: valid, nothing to parse
            self.data: Any = data
        else:  # read from Redis: check it now
            self.data = self._json("data", {})
            self.opts = self._decode_opts()
        self.failed_reason: str | None = fields.get("failedReason")
        self.attempts_made = _int(fields.get("atm"))
        self.processed_by: str | None = fields.get("pb")
        self.deferred_failure: str | None = fields.get("defa")
        self.scheduler_id: str | None = fields.get("rjk")
        self.group: str | None = fields.get("gid")

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

    # --- operations (sync or awaitable, by binding) ------------------------------

    def _run(self, plan: Plan[Any]) -> Any:
        return self._binding.run(plan)

    def _then(self, plan: Plan[Any], after: Callable[[Any], Any]) -> Any:
        result = self._run(plan)
        if self._binding.is_async:
            async def chain() -> Any:
                return after(await result)
            return chain()
        return after(result)

    def _update(self, op: str, **params: Any) -> Plan[Any]:
        keys, clock = self._binding.keys, self._binding.clock
        return _ops.simple("updateJob", keys, clock, op=op, job_id=self.id, id=self.id,
                           lockToken=self._token, **params)

    def update_progress(self, value: Any) -> Any:
        """Store progress (a number or any JSON value) and emit a ``progress`` event."""
        encoded = encode_json(value, "progress")

        def done(_: Any) -> None:
            self.progress = value
            if self._binding.on_progress is not None:
                self._binding.on_progress(self, value)
        return self._then(self._update("update_progress", progress=encoded), done)

    def log(self, line: str) -> Any:
        """Append a line to the job's log; returns the log's length."""
        keep = self.opts.get("kl")
        return self._run(self._update("log", log=str(line),
                                      keepLogs=keep if isinstance(keep, int) else None))

    def get_logs(self, start: int = 0, end: int = -1) -> Any:
        """The job's log lines."""
        return self._run(_ops.get_logs(self._binding.keys, self.id, start, end))

    def update_data(self, data: Any) -> Any:
        """Replace the job's data (JSON)."""
        encoded = encode_json(data, "data")

        def done(_: Any) -> None:
            self.data = json.loads(encoded)
        return self._then(self._update("update_data", data=encoded), done)

    def get_state(self) -> Any:
        """The job's current state (``waiting``, ``active``, ``completed``, ...)."""
        return self._run(_ops.get_state(self._binding.keys, self._binding.clock, self.id))

    def remove(self) -> Any:
        """Remove the job; ``False`` when it is locked by a worker (running)."""
        plan = _ops.simple("removeJob", self._binding.keys, self._binding.clock,
                           op="remove", job_id=self.id, id=self.id)
        return self._then(plan, bool)

    def retry(self, state: str = "failed", *, reset_attempts: bool = False) -> Any:
        """Move this failed (or completed) job back to be processed."""
        plan = _ops.simple("reprocessJobs", self._binding.keys, self._binding.clock,
                           op="retry", job_id=self.id, state=state, id=self.id,
                           resetAttempts=reset_attempts)
        return self._then(plan, lambda _: None)

    def promote(self) -> Any:
        """Make this delayed job ready now."""
        plan = _ops.simple("promote", self._binding.keys, self._binding.clock,
                           op="promote", job_id=self.id, id=self.id)
        return self._then(plan, lambda _: None)

    def move_to_delayed(self, until: datetime | Duration) -> Any:
        """From inside a processor: move this job to delayed, then raise ``DelayedError``.

        ``until`` is an aware ``datetime`` or seconds from now. The attempt
        does not count as failed.
        """
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
        return self._then(plan, done)

    def wait_until_finished(self, timeout: float | timedelta | None = None) -> Any:
        """Wait for the job to complete; returns its return value.

        Raises ``JobFailedError`` if it failed, ``TimeoutError`` after ``timeout``.
        """
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        plan = _ops.wait_finished(self._binding.keys, self.id, seconds)
        runner = self._binding.run_blocking or self._binding.run
        result = runner(plan)

        def done(outcome: tuple[str, dict[str, str]]) -> Any:
            state, fields = outcome
            if state == "unknown":
                raise JobNotFoundError(f"job {self.id!r} does not exist", self.id)
            self._load(fields)
            if state == "failed":
                raise JobFailedError(f"job {self.id!r} failed: {self.failed_reason}",
                                     self.id, self.failed_reason)
            return self.return_value
        if self._binding.is_async:
            async def chain() -> Any:
                return done(await result)
            return chain()
        return done(result)


def job_from_fields(binding: Binding, job_id: str, fields: dict[str, str] | None,
                    token: str | None = None) -> Job | None:
    """A ``Job`` from a stored hash, or ``None`` for a missing job."""
    if not fields:
        return None
    return Job(binding, job_id, fields, token)


__all__ = ["Binding", "Job", "job_from_fields"]
