"""``Queue``: producing and managing jobs with a synchronous Redis client (``AsyncQueue``,
its asyncio twin, lives in ``_async_queue`` and is importable from here too).

Both are thin shells over one description of each operation
(``_queue_core.QueueCore`` builds the plans; the shells run them with a
``redis.Redis`` or a ``redis.asyncio.Redis`` client), so they cannot drift apart.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis.cluster

from . import _ops, _ops_dlq, _schedule
from ._async_queue import AsyncQueue
from ._cluster import check_cluster_queue
from ._cluster_fast import SyncSlotTransport
from ._job_base import state_plan
from ._plan import Plan, cmd, single
from ._queue_core import QueueCore, text, ttl_seconds
from ._resp import SyncConnection, options_from
from ._runner import run_sync, sync_transport
from .connection import SOCKET_TIMEOUT, SyncClient, sync_client
from .job import Binding, Job
from .options import DEFAULT_MAX_PAYLOAD_BYTES, AddOptions, BulkJob, Duration, duration_ms
from .states import JobState

if sys.version_info >= (3, 11):
    from typing import Unpack
elif TYPE_CHECKING:  # Python 3.10: only type checkers need it (they ship typing_extensions)
    from typing_extensions import Unpack

T = TypeVar("T")


class Queue:
    """A queue for producing and managing jobs, with a synchronous client.

    ``connection`` is a URL, a ``redis.Redis`` client, or ``None`` (then
    ``$PYQUEUE_REDIS_URL``, ``$REDIS_URL`` or the embedded server).
    """

    def __init__(self, name: str, *, connection: str | SyncClient | None = None,
                 prefix: str = "bull", default_job_options: Mapping[str, Any] | None = None,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 pipelined: bool = True) -> None:
        self._core = QueueCore(Job, name, prefix=prefix,
                                default_job_options=default_job_options,
                                max_payload_bytes=max_payload_bytes)
        self.client, self._owns_client = sync_client(connection)
        check_cluster_queue(self.client, self._owns_client, self._core.prefix, self._core.name)
        options = options_from(self.client) if pipelined else None
        #: Commands go through a lean per-thread connection when the client's
        #: settings allow it (they do unless RESP3, caching or a custom class).
        self._fast = SyncConnection(options, SOCKET_TIMEOUT) if options is not None else None
        self._slot: SyncSlotTransport | None = None
        if pipelined and isinstance(self.client, redis.cluster.RedisCluster):
            # On a cluster: pyqueue's connection to the primary of the queue's slot.
            self._slot = SyncSlotTransport(self.client, self._core.keys.meta, SOCKET_TIMEOUT)
        self._transport = self._slot or sync_transport(self._fast or self.client)
        self._binding = Binding(self._core.keys, self._core.clock, self._run, is_async=False)

    @property
    def name(self) -> str:
        """The queue's name."""
        return self._core.name

    @property
    def prefix(self) -> str:
        """The key prefix (``bull`` by default)."""
        return self._core.prefix

    def _run(self, plan: Plan[T]) -> T:
        return run_sync(self._transport, plan)

    def add(self, name: str, data: Any = None, **opts: Unpack[AddOptions]) -> Job:
        """Add a job; returns it (the existing one for a taken ``job_id``)."""
        if opts.get("repeat") is not None:
            return self._run(self._core.repeat_plan(name, data, opts, self._binding))
        if opts.get("parent") is not None:
            return self._run(self._core.child_plan(name, data, opts, self._binding))
        encoded = self._core.encode(name, data, opts)
        return self._run(self._core.add_one_plan(encoded, self._binding))

    def add_bulk(self, jobs: Sequence[BulkJob] | Sequence[Mapping[str, Any]]) -> list[Job]:
        """Add many jobs in one round trip: ``[{"name", "data", "opts"}, ...]``.

        If Redis fails part way, the error (a ``RedisError``) has
        ``acknowledged_ids``: the jobs known to be added; the others may or may
        not have been (give jobs a ``job_id`` to make a retry safe)."""
        encoded = self._core.encode_bulk(jobs)
        if not encoded:
            return []
        return self._run(self._core.add_plan(encoded, self._binding))

    def get_job(self, job_id: str) -> Job | None:
        """The job with that id, or ``None``."""
        return self._run(self._core.get_job_plan(job_id, self._binding))

    def get_deduplication_job_id(self, dedup_id: str) -> str | None:
        """The id of the job that holds deduplication id ``dedup_id``, if any."""
        value = self._run(single(cmd("GET", self._core.keys.dedup(dedup_id))))
        return None if value is None else text(value)

    def remove_deduplication_key(self, dedup_id: str) -> bool:
        """Release deduplication id ``dedup_id`` now (the next add with it is accepted)."""
        return bool(self._run(single(cmd("DEL", self._core.keys.dedup(dedup_id)))))

    def get_job_state(self, job_id: str) -> JobState:
        """``waiting``, ``prioritized``, ``delayed``, ``active``, ``completed``,
        ``failed``, ``waiting-children`` or ``unknown``: a :class:`JobState`, which
        compares equal to those strings."""
        return self._run(state_plan(self._core.keys, self._core.clock, str(job_id)))

    def get_job_counts(self, *states: str) -> dict[str, int]:
        """Counts per state (all states when none are given)."""
        return self._run(_ops.get_counts(self._core.keys, states))

    def get_metrics(self, kind: str, start: int = 0, end: int = -1) -> dict[str, Any]:
        """BullMQ's per-minute metrics of ``kind`` (``"completed"`` or ``"failed"``),
        kept by workers started with ``metrics={"max_data_points": n}`` (pyqueue's
        or BullMQ's): ``{"meta": {"count", "prev_ts", "prev_count"}, "data":
        [jobs per minute, newest first], "count": data points}``."""
        return self._run(_ops.get_metrics(self._core.keys, kind, start, end))

    def get_jobs(self, states: str | Iterable[str], start: int = 0, end: int = -1,
                 asc: bool = False) -> list[Job]:
        """Jobs in the given states, newest first unless ``asc``."""
        return self._run(self._core.get_jobs_plan(states, start, end, asc, self._binding))

    def pause(self) -> None:
        """Pause the queue for every worker: they finish active jobs and take no new ones."""
        self._run(self._core.pause_plan(True))

    def resume(self) -> None:
        """Resume a paused queue."""
        self._run(self._core.pause_plan(False))

    def is_paused(self) -> bool:
        """Whether the queue is paused."""
        return self._run(_ops.is_paused(self._core.keys))

    def drain(self, delayed: bool = False) -> None:
        """Remove all waiting and prioritized jobs (and delayed ones when asked)."""
        self._run(self._core.drain_plan(delayed))

    def clean(self, grace: Duration, limit: int = 0, state: str = "completed") -> list[str]:
        """Remove jobs of ``state`` older than ``grace`` seconds; returns their ids."""
        return self._run(self._core.clean_plan(grace, limit, state))

    def obliterate(self, force: bool = False) -> None:
        """Delete the queue and all its jobs; refuses while jobs are active unless forced."""
        self._run(self._core.obliterate_plan(force))

    def remove(self, job_id: str) -> bool:
        """Remove a job; ``False`` if it does not exist or is locked (running)."""
        return bool(self._run(self._core.remove_plan(str(job_id))))

    def retry_jobs(self, state: str = "failed", count: int = 1000) -> int:
        """Move up to ``count`` failed (or completed) jobs back to wait; returns how many."""
        return self._run(self._core.retry_jobs_plan(state, count))

    def promote_jobs(self) -> int:
        """Move every delayed job to wait; returns how many."""
        return self._run(_ops.promote_all(self._core.keys, self._core.clock))

    def set_global_concurrency(self, n: int | None) -> None:
        """At most ``n`` jobs active across all workers (``None`` or 0 clears it)."""
        self._run(self._core.concurrency_plan(n))

    def set_global_rate_limit(self, max: int | None, duration: Duration = 0) -> None:
        """At most ``max`` jobs started per ``duration`` seconds across all workers."""
        self._run(self._core.rate_limit_plan(max, duration))

    def set_group_concurrency(self, n: int | None, group: str | None = None) -> None:
        """At most ``n`` jobs of ``group`` active at once across all workers; with
        ``group=None`` the default for every group (0 or None clears it)."""
        self._run(self._core.group_limits_plan(group, concurrency=n or 0))

    def set_group_rate_limit(self, max: int | None, duration: Duration = 0,
                             group: str | None = None) -> None:
        """At most ``max`` jobs of ``group`` started per ``duration`` seconds; with
        ``group=None`` the default for every group (0 or None clears it)."""
        self._run(self._core.group_limits_plan(group, max=max, duration=duration))

    def get_group_counts(self) -> dict[str, dict[str, int]]:
        """Per group id: ``{"waiting": n, "active": n}``."""
        return self._run(_ops.get_group_counts(self._core.keys))

    def upsert_job_scheduler(self, scheduler_id: str, *, pattern: str | None = None,
                             every: Duration | None = None, tz: str | None = None,
                             limit: int | None = None, start_date: Any = None,
                             end_date: Any = None, immediately: bool = False,
                             template: Mapping[str, Any] | None = None) -> Job:
        """Create or replace a job scheduler: a cron ``pattern`` (5 fields, or 6 with
        seconds first) in time zone ``tz``, or ``every`` seconds; optional ``limit``
        (iterations), ``start_date``/``end_date`` (datetime or epoch seconds),
        ``immediately`` (first run now), and ``template={"name", "data", "opts"}``.
        Upserting the same id again replaces it; there is always exactly one
        pending iteration. Returns that iteration's job."""
        return self._run(self._core.scheduler_plan(
            scheduler_id, self._binding, pattern=pattern, every=every, tz=tz, limit=limit,
            start_date=start_date, end_date=end_date, immediately=immediately,
            template=template))

    def remove_job_scheduler(self, scheduler_id: str) -> bool:
        """Delete a scheduler and its pending iteration; ``False`` if unknown."""
        return bool(self._run(self._core.remove_scheduler_plan(scheduler_id)))

    def get_job_schedulers(self) -> list[dict[str, Any]]:
        """Every scheduler: id, name, next, pattern or every, tz, limit, start_date,
        end_date, iteration_count, template."""
        return self._run(_schedule.list_plan(self._core.keys))

    def get_job_scheduler(self, scheduler_id: str) -> dict[str, Any] | None:
        """One scheduler (see ``get_job_schedulers``), or ``None``."""
        found = self._run(_schedule.list_plan(self._core.keys, scheduler_id))
        return found[0] if found else None

    def cancel_job(self, job_id: str, reason: str = "cancelled", *,
                   remove: bool = False) -> str:
        """Cancel a job wherever it is, from any process.

        A job that is not running fails now with ``reason`` (or is removed with
        ``remove=True``): returns ``"cancelled"``. A running job is cancelled by
        the worker running it within about half a second (its async processor
        sees ``asyncio.CancelledError``; a ``def`` processor can check
        ``job.cancel_requested``), then fails without retry or is removed:
        returns ``"requested"``. A finished job is left alone: ``"finished"``.
        Raises ``JobNotFoundError`` for an unknown id.
        """
        return self._run(self._core.cancel_plan(job_id, reason, remove))

    def set_dead_letter_queue(self, queue: str | Queue | AsyncQueue | None) -> None:
        """Copy every job of this queue that fails for good into the queue ``queue``
        (a name, or a queue under the same prefix; ``None`` turns it off). Stored
        in Redis, so every pyqueue worker of this queue honours it. Raises
        ``DeadLetterQueueError`` (this queue itself, another prefix) before any write."""
        name = _ops_dlq.check_target(self._core.keys, queue)
        self._run(_ops_dlq.set_plan(self._core.keys, name))

    def get_dead_letter_queue(self) -> str | None:
        """The name of this queue's dead-letter queue, or ``None``."""
        return self._run(_ops_dlq.get_plan(self._core.keys))

    def get_dead_letters(self, start: int = 0, end: int = -1, *, name: str | None = None,
                         since: Any = None, failed_reason: str | None = None,
                         job_id: str | None = None) -> list[Job]:
        """Dead-letter entries ``start..end`` (inclusive), oldest first, as jobs of
        the dead-letter queue (``job.data`` is the entry). On a queue with a
        dead-letter queue: its own entries; on a dead-letter queue: all of them.
        Filters as in ``replay_dead_letters``."""
        wanted = _ops_dlq.filters(name=name, since=since, failed_reason=failed_reason,
                                  job_id=job_id)
        return self._run(self._core.dead_letters_plan(start, end, wanted, self._binding))

    def replay_dead_letters(self, *, name: str | None = None, since: Any = None,
                            failed_reason: str | None = None, limit: int | None = None,
                            rate: float | None = None, job_id: str | None = None,
                            entry_ids: Collection[str] | None = None) -> list[str]:
        """Move dead-letter entries back to their queue as new jobs (new ids,
        attempts reset), each removed from the dead-letter queue in the same step;
        returns the new ids. Filters: ``name`` (job name), ``since`` (failed at or
        after: datetime, epoch seconds, or a timedelta ago), ``failed_reason``
        (substring), ``limit``, ``job_id`` (the failed job's id), ``entry_ids``
        (only these entries: their job ids in the dead-letter queue). ``rate`` (jobs
        per second) spreads them out as delayed jobs so workers are not flooded."""
        return self._run(self._core.replay_dead_letters_plan(
            rate, name=name, since=since, failed_reason=failed_reason, limit=limit,
            job_id=job_id, entry_ids=entry_ids))

    def purge_dead_letters(self, *, name: str | None = None, since: Any = None,
                           failed_reason: str | None = None, limit: int | None = None,
                           job_id: str | None = None,
                           entry_ids: Collection[str] | None = None) -> int:
        """Delete dead-letter entries without replaying them; returns how many.
        Filters as in ``replay_dead_letters``."""
        return self._run(self._core.purge_dead_letters_plan(
            name=name, since=since, failed_reason=failed_reason, limit=limit, job_id=job_id,
            entry_ids=entry_ids))

    def rate_limit(self, duration: Duration) -> None:
        """Stop every worker of the queue from taking jobs for ``duration`` seconds."""
        ms = duration_ms(duration, "duration", allow_zero=False)
        self._run(single(cmd("SET", self._core.keys.limiter, 2**53 - 1, "PX", ms)))

    def get_rate_limit_ttl(self) -> float:
        """Seconds until the queue's rate limit lets jobs start again (0 when it
        is not limited now)."""
        return ttl_seconds(self._run(single(cmd("PTTL", self._core.keys.limiter))))

    def close(self) -> None:
        """Release the connection (if pyqueue created it)."""
        if self._fast is not None:
            self._fast.close()
        if self._slot is not None:
            self._slot.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Queue {self.prefix}:{self.name}>"


__all__ = ["AsyncQueue", "Queue"]
