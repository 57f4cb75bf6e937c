"""The fields of a job as stored in Redis (``JobBase``) and the plans of its
operations, shared by :class:`~pyqueue.job.Job` and :class:`~pyqueue.job.AsyncJob`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property, partial
from typing import Any, TypeVar

from . import _ops
from . import _scripts as S
from ._job_flow import FlowPlans
from ._jsontext import decode_opts_text
from ._keys import QueueKeys
from ._plan import Plan
from .errors import JobFailedError, JobNotFoundError, RedisDataError
from .options import Duration, duration_ms, encode_json, validate_priority
from .states import JobState

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


UNSET: Any = object()
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


_STATES = {state.value: state for state in JobState}


def as_job_state(text: str) -> JobState:
    """The :class:`JobState` of a state name Redis returned (``getState``)."""
    try:
        return _STATES[text]
    except KeyError:
        raise RedisDataError(f"unknown job state {text!r} from Redis") from None


def state_plan(keys: QueueKeys, clock: _ops.Clock, job_id: str) -> Plan[JobState]:
    """The job's current state (``unknown`` when there is no such job)."""
    return _then(_ops.get_state(keys, clock, job_id), as_job_state)


def _then(plan: Plan[T], after: Callable[[T], R]) -> Plan[R]:
    """``plan``, then ``after`` applied to its result (still one plan)."""
    result = yield from plan
    return after(result)


class JobBase(FlowPlans):
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
                 token: str | None = None, data: Any = UNSET) -> None:
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
        self._set_fields(fields, UNSET)

    def _set_fields(self, fields: dict[str, str], data: Any) -> None:
        self.fields = fields
        self.name = fields.get("name", "")
        #: Why the stored job cannot be processed (data or opts not valid JSON).
        self.corruption: str | None = None
        self.group: str | None = fields.get("gid")
        if data is not UNSET:
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
        value = self.fields.get("opts")
        if not value:
            return {}
        try:
            opts = decode_opts_text(value)
        except ValueError as exc:
            if self.corruption is None:
                self.corruption = f"corrupt job: field 'opts' is not valid JSON ({exc})"
            return {}
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

    def _left_active(self) -> None:
        """The job left ``active`` by its own move, made by another copy of it (a
        process-mode child called ``move_to_delayed``, ``sleep`` or
        ``move_to_waiting_children``): the worker must not finish it."""
        self._token = None

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
        return _ops.simple(clock, partial(S.update_job, keys, id=self.id,
                                          lock_token=self._token, **params),
                           op=op, job_id=self.id)

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
                                  keep_logs=keep if isinstance(keep, int) else None), int)

    def _logs_plan(self, start: int, end: int) -> Plan[list[str]]:
        return _ops.get_logs(self._binding.keys, self.id, start, end)

    def _data_plan(self, data: Any) -> Plan[None]:
        encoded = encode_json(data, "data")

        def done(_: Any) -> None:
            self.data = json.loads(encoded)
        return _then(self._update("update_data", data=encoded), done)

    def _state_plan(self) -> Plan[JobState]:
        return state_plan(self._binding.keys, self._binding.clock, self.id)

    def _remove_plan(self) -> Plan[bool]:
        plan = _ops.simple(self._binding.clock,
                           partial(S.remove_job, self._binding.keys, id=self.id),
                           op="remove", job_id=self.id)
        return _then(plan, bool)

    def _retry_plan(self, state: str, reset_attempts: bool) -> Plan[None]:
        plan = _ops.simple(self._binding.clock,
                           partial(S.reprocess_jobs, self._binding.keys, state=state,
                                   id=self.id, reset_attempts=reset_attempts),
                           op="retry", job_id=self.id)
        return _then(plan, _nothing)

    def _promote_plan(self) -> Plan[None]:
        plan = _ops.simple(self._binding.clock,
                           partial(S.promote, self._binding.keys, id=self.id),
                           op="promote", job_id=self.id)
        return _then(plan, _nothing)

    def _priority_plan(self, priority: int) -> Plan[None]:
        value = validate_priority(priority)
        plan = _ops.simple(self._binding.clock,
                           partial(S.change_priority, self._binding.keys, id=self.id,
                                   priority=value),
                           op="change_priority", job_id=self.id)

        def done(_: Any) -> None:
            self.priority = value
        return _then(plan, done)

    def _change_delay_plan(self, delay: Duration) -> Plan[None]:
        ms = duration_ms(delay, "delay")
        plan = _ops.simple(self._binding.clock,
                           partial(S.change_delay, self._binding.keys, id=self.id,
                                   delay_ms=ms),
                           op="change_delay", job_id=self.id)

        def done(_: Any) -> None:
            self.delay = ms / 1000
        return _then(plan, done)

    def _delayed_plan(self, until: datetime | Duration) -> Plan[None]:
        clock = self._binding.clock
        if isinstance(until, datetime):
            if until.tzinfo is None:
                until = until.replace(tzinfo=timezone.utc)
            due = int(until.timestamp() * 1000)
        else:
            due = clock.now_ms() + duration_ms(until, "until")
        plan = _ops.simple(clock, partial(S.retry_job, self._binding.keys, id=self.id,
                                          lock_token=self._token,
                                          due_ms=max(due, clock.now_ms() + 1)),
                           op="move_to_delayed", job_id=self.id)

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
