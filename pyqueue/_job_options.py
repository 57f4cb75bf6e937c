"""The typed shapes of job options as users write them (``JobOptions``, ``AddOptions``,
``RepeatOptions``, ``BulkJob``, ...): snake_case, durations in seconds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypedDict

Duration = int | float | timedelta


class BackoffOptions(TypedDict, total=False):
    """``backoff={"type": ..., "delay": seconds, "jitter": 0..1}``."""

    type: str
    delay: Duration
    jitter: float


class KeepJobs(TypedDict, total=False):
    """Retention as ``{"age": seconds, "count": n}``."""

    age: Duration
    count: int


class DeduplicationOptions(TypedDict, total=False):
    """``deduplication={"id": str, "ttl": seconds, <mode>: True}``; at most one mode:
    ``extend``, ``replace``, ``reschedule``, ``keep_last_if_active``."""

    id: str
    ttl: Duration
    extend: bool
    replace: bool
    reschedule: bool
    keep_last_if_active: bool


class TelemetryOptions(TypedDict, total=False):
    """``telemetry={...}``: trace context carried with the job (BullMQ's ``tm``/``omc``).
    ``pyqueue.otel`` fills ``metadata`` itself; ``omit_context=True`` keeps the
    job out of the current trace."""

    metadata: str
    omit_context: bool


class JobOptions(TypedDict, total=False):
    """The options ``Queue.add`` accepts (all optional)."""

    job_id: str
    priority: int
    delay: Duration
    attempts: int
    backoff: Duration | BackoffOptions
    lifo: bool
    remove_on_complete: bool | int | KeepJobs
    remove_on_fail: bool | int | KeepJobs
    deduplication: DeduplicationOptions
    timeout: Duration
    keep_logs: int
    group: str
    #: Flow children: what a final failure of this job does to its parent
    #: (BullMQ's fpof / cpof / idof / rdof; at most one, see docs/flows.md).
    fail_parent_on_failure: bool
    continue_parent_on_failure: bool
    ignore_dependency_on_failure: bool
    remove_dependency_on_failure: bool
    telemetry: TelemetryOptions




class RepeatOptions(TypedDict, total=False):
    """``add(..., repeat={...})``: a job scheduler (see ``upsert_job_scheduler``)."""

    pattern: str
    every: Duration
    tz: str
    limit: int
    start_date: Any
    end_date: Any
    immediately: bool
    offset: Duration


class ParentRef(TypedDict):
    """``add(..., parent={"id": job_id, "queue": queue_name})``: an existing job of
    the same prefix that waits for the new job (see docs/flows.md)."""

    id: str
    queue: str


class AddOptions(JobOptions, total=False):
    """The options ``Queue.add`` accepts: :class:`JobOptions`, ``repeat`` and ``parent``."""

    repeat: RepeatOptions
    parent: ParentRef


class _BulkJobName(TypedDict):
    name: str


class BulkJob(_BulkJobName, total=False):
    """One job of ``add_bulk``: ``{"name": str, "data": ..., "opts": {...}}``."""

    data: Any
    opts: JobOptions
