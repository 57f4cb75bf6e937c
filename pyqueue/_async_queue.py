"""``AsyncQueue``: ``Queue`` for asyncio programs, the same operations as coroutines over
the plans ``_queue_core.QueueCore`` builds."""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis.asyncio.cluster

from . import _ops, _ops_dlq, _schedule
from ._add_batch import AddBatcher
from ._cluster import check_cluster_queue
from ._cluster_fast import SlotTransport
from ._job_base import state_plan
from ._plan import Plan, cmd, single
from ._queue_core import QueueCore, text, ttl_seconds
from ._resp import PipelinedConnection, options_from
from ._runner import async_transport, run_async
from .connection import SOCKET_TIMEOUT, AsyncClient, async_client
from .job import AsyncJob, Binding
from .options import DEFAULT_MAX_PAYLOAD_BYTES, AddOptions, BulkJob, Duration, duration_ms
from .states import JobState

if sys.version_info >= (3, 11):
    from typing import Unpack
elif TYPE_CHECKING:  # Python 3.10: only type checkers need it (they ship typing_extensions)
    from typing_extensions import Unpack

T = TypeVar("T")


class AsyncQueue:
    """``Queue`` for asyncio programs: the same methods, as coroutines."""

    def __init__(self, name: str, *, connection: str | AsyncClient | None = None,
                 prefix: str = "bull", default_job_options: Mapping[str, Any] | None = None,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 pipelined: bool = True) -> None:
        self._core = QueueCore(AsyncJob, name, prefix=prefix,
                                default_job_options=default_job_options,
                                max_payload_bytes=max_payload_bytes)
        self.client, self._owns_client = async_client(connection)
        check_cluster_queue(self.client, self._owns_client, self._core.prefix, self._core.name)
        options = options_from(self.client) if pipelined else None
        self._fast = PipelinedConnection(options, SOCKET_TIMEOUT) if options is not None \
            else None
        self._slot: SlotTransport | None = None
        if pipelined and isinstance(self.client, redis.asyncio.cluster.RedisCluster):
            # On a cluster: pyqueue's connection to the primary of the queue's slot.
            self._slot = SlotTransport(self.client, self._core.keys.meta, SOCKET_TIMEOUT)
        self._transport = self._slot or async_transport(self._fast or self.client)
        self._binding = Binding(self._core.keys, self._core.clock, self._run, is_async=True,
                                run_blocking=self._run_blocking)
        self._adds = AddBatcher(self._core, self._binding, self._transport)

    @property
    def name(self) -> str:
        """The queue's name."""
        return self._core.name

    @property
    def prefix(self) -> str:
        """The key prefix (``bull`` by default)."""
        return self._core.prefix

    async def _run(self, plan: Plan[T]) -> T:
        return await run_async(self._transport, plan)

    async def _run_blocking(self, plan: Plan[T]) -> T:
        return await run_async(self.client, plan)

    async def add(self, name: str, data: Any = None, **opts: Unpack[AddOptions]) -> AsyncJob:
        """Add a job; returns it (the existing one for a taken ``job_id``).

        Adds made together (pending in the same event-loop iteration, such as an
        ``asyncio.gather`` of adds) are sent to Redis as one call; each caller
        still gets its own job or its own error, and ids, events and
        deduplication are as if the adds had been awaited one by one."""
        if opts.get("repeat") is not None:
            return await self._run(self._core.repeat_plan(name, data, opts, self._binding))
        if opts.get("parent") is not None:
            return await self._run(self._core.child_plan(name, data, opts, self._binding))
        encoded = self._core.encode(name, data, opts)
        adds = self._adds
        if not adds.idle():  # another add in flight: batched with the others
            return await adds.add(encoded)
        # Alone: sent at once (see _add_batch). run_async directly, not
        # through _run: one coroutine less on the hot path.
        adds.inflight += 1
        try:
            return await run_async(self._transport, self._core.add_one_plan(encoded,
                                                                            self._binding))
        finally:
            adds.call_done()

    async def add_bulk(self, jobs: Sequence[BulkJob] | Sequence[Mapping[str, Any]]
                       ) -> list[AsyncJob]:
        """Add many jobs in one round trip (see ``Queue.add_bulk``)."""
        encoded = self._core.encode_bulk(jobs)
        if not encoded:
            return []
        return await self._run(self._core.add_plan(encoded, self._binding))

    async def get_job(self, job_id: str) -> AsyncJob | None:
        """The job with that id, or ``None``."""
        return await self._run(self._core.get_job_plan(job_id, self._binding))

    async def get_deduplication_job_id(self, dedup_id: str) -> str | None:
        """The id of the job that holds deduplication id ``dedup_id``, if any."""
        value = await self._run(single(cmd("GET", self._core.keys.dedup(dedup_id))))
        return None if value is None else text(value)

    async def remove_deduplication_key(self, dedup_id: str) -> bool:
        """Release deduplication id ``dedup_id`` now."""
        return bool(await self._run(single(cmd("DEL", self._core.keys.dedup(dedup_id)))))

    async def get_job_state(self, job_id: str) -> JobState:
        """The job's state in BullMQ's words (see ``Queue.get_job_state``)."""
        return await self._run(state_plan(self._core.keys, self._core.clock, str(job_id)))

    async def get_job_counts(self, *states: str) -> dict[str, int]:
        """Counts per state (all states when none are given)."""
        return await self._run(_ops.get_counts(self._core.keys, states))

    async def get_metrics(self, kind: str, start: int = 0, end: int = -1) -> dict[str, Any]:
        """BullMQ's per-minute metrics of ``kind`` (see ``Queue.get_metrics``)."""
        return await self._run(_ops.get_metrics(self._core.keys, kind, start, end))

    async def get_jobs(self, states: str | Iterable[str], start: int = 0, end: int = -1,
                       asc: bool = False) -> list[AsyncJob]:
        """Jobs in the given states, newest first unless ``asc``."""
        return await self._run(self._core.get_jobs_plan(states, start, end, asc,
                                                        self._binding))

    async def pause(self) -> None:
        """Pause the queue for every worker."""
        await self._run(self._core.pause_plan(True))

    async def resume(self) -> None:
        """Resume a paused queue."""
        await self._run(self._core.pause_plan(False))

    async def is_paused(self) -> bool:
        """Whether the queue is paused."""
        return await self._run(_ops.is_paused(self._core.keys))

    async def drain(self, delayed: bool = False) -> None:
        """Remove all waiting and prioritized jobs (and delayed ones when asked)."""
        await self._run(self._core.drain_plan(delayed))

    async def clean(self, grace: Duration, limit: int = 0,
                    state: str = "completed") -> list[str]:
        """Remove jobs of ``state`` older than ``grace`` seconds; returns their ids."""
        return await self._run(self._core.clean_plan(grace, limit, state))

    async def obliterate(self, force: bool = False) -> None:
        """Delete the queue and all its jobs; refuses while jobs are active unless forced."""
        await self._run(self._core.obliterate_plan(force))

    async def remove(self, job_id: str) -> bool:
        """Remove a job; ``False`` if it does not exist or is locked (running)."""
        return bool(await self._run(self._core.remove_plan(str(job_id))))

    async def retry_jobs(self, state: str = "failed", count: int = 1000) -> int:
        """Move up to ``count`` failed (or completed) jobs back to wait."""
        return await self._run(self._core.retry_jobs_plan(state, count))

    async def promote_jobs(self) -> int:
        """Move every delayed job to wait; returns how many."""
        return await self._run(_ops.promote_all(self._core.keys, self._core.clock))

    async def set_global_concurrency(self, n: int | None) -> None:
        """At most ``n`` jobs active across all workers (``None`` or 0 clears it)."""
        await self._run(self._core.concurrency_plan(n))

    async def set_global_rate_limit(self, max: int | None, duration: Duration = 0) -> None:
        """At most ``max`` jobs started per ``duration`` seconds across all workers."""
        await self._run(self._core.rate_limit_plan(max, duration))

    async def set_group_concurrency(self, n: int | None, group: str | None = None) -> None:
        """At most ``n`` jobs of ``group`` active at once (``group=None``: every group)."""
        await self._run(self._core.group_limits_plan(group, concurrency=n or 0))

    async def set_group_rate_limit(self, max: int | None, duration: Duration = 0,
                                   group: str | None = None) -> None:
        """At most ``max`` jobs of ``group`` started per ``duration`` seconds."""
        await self._run(self._core.group_limits_plan(group, max=max, duration=duration))

    async def get_group_counts(self) -> dict[str, dict[str, int]]:
        """Per group id: ``{"waiting": n, "active": n}``."""
        return await self._run(_ops.get_group_counts(self._core.keys))

    async def upsert_job_scheduler(self, scheduler_id: str, *, pattern: str | None = None,
                                   every: Duration | None = None, tz: str | None = None,
                                   limit: int | None = None, start_date: Any = None,
                                   end_date: Any = None, immediately: bool = False,
                                   template: Mapping[str, Any] | None = None) -> AsyncJob:
        """Create or replace a job scheduler (see ``Queue.upsert_job_scheduler``)."""
        return await self._run(self._core.scheduler_plan(
            scheduler_id, self._binding, pattern=pattern, every=every, tz=tz, limit=limit,
            start_date=start_date, end_date=end_date, immediately=immediately,
            template=template))

    async def remove_job_scheduler(self, scheduler_id: str) -> bool:
        """Delete a scheduler and its pending iteration; ``False`` if unknown."""
        return bool(await self._run(self._core.remove_scheduler_plan(scheduler_id)))

    async def get_job_schedulers(self) -> list[dict[str, Any]]:
        """Every scheduler (see ``Queue.get_job_schedulers``)."""
        return await self._run(_schedule.list_plan(self._core.keys))

    async def get_job_scheduler(self, scheduler_id: str) -> dict[str, Any] | None:
        """One scheduler, or ``None``."""
        found = await self._run(_schedule.list_plan(self._core.keys, scheduler_id))
        return found[0] if found else None

    async def cancel_job(self, job_id: str, reason: str = "cancelled", *,
                         remove: bool = False) -> str:
        """Cancel a job from any process (see ``Queue.cancel_job``)."""
        return await self._run(self._core.cancel_plan(job_id, reason, remove))

    async def set_dead_letter_queue(self, queue: str | Any | None) -> None:
        """Copy every job of this queue that fails for good into the queue ``queue``
        (a name, or a queue under the same prefix; ``None`` turns it off). Stored
        in Redis, so every pyqueue worker of this queue honours it. Raises
        ``DeadLetterQueueError`` (this queue itself, another prefix) before any write."""
        name = _ops_dlq.check_target(self._core.keys, queue)
        await self._run(_ops_dlq.set_plan(self._core.keys, name))

    async def get_dead_letter_queue(self) -> str | None:
        """The name of this queue's dead-letter queue, or ``None``."""
        return await self._run(_ops_dlq.get_plan(self._core.keys))

    async def get_dead_letters(self, start: int = 0, end: int = -1, *,
                               name: str | None = None, since: Any = None,
                               failed_reason: str | None = None,
                               job_id: str | None = None) -> list[AsyncJob]:
        """Dead-letter entries ``start..end`` (inclusive), oldest first, as jobs of
        the dead-letter queue (``job.data`` is the entry). On a queue with a
        dead-letter queue: its own entries; on a dead-letter queue: all of them.
        Filters as in ``replay_dead_letters``."""
        wanted = _ops_dlq.filters(name=name, since=since, failed_reason=failed_reason,
                                  job_id=job_id)
        return await self._run(self._core.dead_letters_plan(start, end, wanted,
                                                            self._binding))

    async def replay_dead_letters(self, *, name: str | None = None, since: Any = None,
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
        return await self._run(self._core.replay_dead_letters_plan(
            rate, name=name, since=since, failed_reason=failed_reason, limit=limit,
            job_id=job_id, entry_ids=entry_ids))

    async def purge_dead_letters(self, *, name: str | None = None, since: Any = None,
                                 failed_reason: str | None = None, limit: int | None = None,
                                 job_id: str | None = None,
                                 entry_ids: Collection[str] | None = None) -> int:
        """Delete dead-letter entries without replaying them; returns how many.
        Filters as in ``replay_dead_letters``."""
        return await self._run(self._core.purge_dead_letters_plan(
            name=name, since=since, failed_reason=failed_reason, limit=limit, job_id=job_id,
            entry_ids=entry_ids))

    async def rate_limit(self, duration: Duration) -> None:
        """Stop every worker of the queue from taking jobs for ``duration`` seconds."""
        ms = duration_ms(duration, "duration", allow_zero=False)
        await self._run(single(cmd("SET", self._core.keys.limiter, 2**53 - 1, "PX", ms)))

    async def get_rate_limit_ttl(self) -> float:
        """Seconds until the rate limit lets jobs start again (0 when not limited)."""
        return ttl_seconds(await self._run(single(cmd("PTTL", self._core.keys.limiter))))

    async def close(self) -> None:
        """Release the connection (if pyqueue created it)."""
        if self._fast is not None:
            await self._fast.aclose()
        if self._slot is not None:
            await self._slot.aclose()
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncQueue {self.prefix}:{self.name}>"

