"""One logical queue over ``k`` sub-queues (shards), each in its own hash slot,
so that on a Redis Cluster one queue's work spreads over several primaries
(pyqueue's own feature: BullMQ has no such queue).

- :class:`ShardedQueue` / :class:`AsyncShardedQueue`: ``add`` puts a job on one
  shard; ``get_job``, ``get_job_counts``, ``get_jobs``, ``pause``... act on all.
- :class:`ShardedWorker`: one :class:`~pyqueue.Worker` per shard, each with
  the same ``concurrency``, so every shard is served with the same capacity.
- :class:`ShardedQueueEvents`: one :class:`~pyqueue.QueueEvents` per shard,
  their events handed to the same callbacks.

Shard names are ``{<name>.<i>.<n>}``: the braces make each shard's keys one
hash tag, and ``n`` is the first number that puts shard ``i``'s slot in the middle
of the ``i``-th ``1/k`` of the 16384 slots, so the shards spread over the primaries
of a cluster whose slots are split evenly (as ``redis-cli --cluster create``
splits them).

Which shard a job goes to: its ``job_id`` when given (hashed, so the same
id always meets itself: ``job_id`` idempotency works); else its
``shard_key=``, ``group`` or deduplication id (so related jobs stay on one
shard, in order, and duplicates meet); else the shards in turn. pyqueue gives
a job without a ``job_id`` the id ``<shard>-<16 hex digits>``, unique across
shards, from which ``get_job`` finds its shard.

Global limits over all shards (``set_global_rate_limit``,
``set_global_concurrency``, ``ShardedWorker(limiter=...)``) are handed out as
tokens from a coordinator in a slot of its own (the keys of a queue named
``{<name>}``, see :mod:`pyqueue._shard_limits`): while a limit is set, each
shard's worker asks it for tokens before a fetch (one extra round trip per
fetch, and the coordinator's primary is a single point for the limits), takes
at most that many jobs, gives back what it did not use, and holds a lease per
running job (extended with the job's lock, so a crashed worker's capacity
comes back after its lock duration). While none is set, workers only re-read
the settings every couple of seconds. Per-group limits are exact: a group's
jobs are all on one shard (set the limit with ``for_each_shard``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from . import _shard_limits as L
from ._runner import run_async, run_sync
from ._shard_routing import Router, merge_jobs, shard_names, sum_counts
from .connection import AsyncClient, SyncClient, async_client, sync_client
from .events import Event, QueueEvents
from .job import AsyncJob, Job
from .options import Duration
from .queue import AsyncQueue, Queue
from .worker import Worker
from .worker._options import parse_limiter

__all__ = ["AsyncShardedQueue", "ShardedQueue", "ShardedQueueEvents", "ShardedWorker",
           "shard_names"]


class ShardedQueue:
    """A queue split into ``shards`` sub-queues (sync client); see the module's text."""

    def __init__(self, name: str, *, shards: int, connection: str | SyncClient | None = None,
                 prefix: str = "bull", **queue_options: Any) -> None:
        self.name = name
        self._router = Router(name, shards, prefix)
        self.client, self._owns_client = sync_client(connection)
        self._limits = L.coordinator_keys(prefix, name)
        #: The shards, as ordinary queues.
        self.queues = [Queue(n, connection=self.client, prefix=prefix, **queue_options)
                       for n in self._router.names]

    @property
    def shard_names(self) -> list[str]:
        """The sub-queues' names (for a ``QueueEvents`` or a BullMQ worker per shard)."""
        return list(self._router.names)

    def add(self, name: str, data: Any = None, *, shard_key: str | None = None,
            **opts: Any) -> Job:
        """Add a job to one shard (see the module's text for which)."""
        shard, opts = self._router.place(opts, shard_key)
        return self.queues[shard].add(name, data, **opts)

    def add_bulk(self, jobs: Sequence[Mapping[str, Any]]) -> list[Job]:
        """Add many jobs: one round trip per shard that gets some; results in order."""
        out: list[Job | None] = [None] * len(jobs)
        for shard, placed in self._router.bulk(jobs).items():
            added = self.queues[shard].add_bulk([spec for _, spec in placed])
            for (position, _), job in zip(placed, added, strict=True):
                out[position] = job
        return [job for job in out if job is not None]

    def get_job(self, job_id: str) -> Job | None:
        """The job with that id, from its shard."""
        return self.queues[self._router.shard_of(job_id)].get_job(job_id)

    def get_job_counts(self, *states: str) -> dict[str, int]:
        """Counts per state, summed over the shards."""
        return sum_counts(queue.get_job_counts(*states) for queue in self.queues)

    def get_jobs(self, states: str | Iterable[str], start: int = 0, end: int = -1,
                 asc: bool = False) -> list[Job]:
        """Jobs in the given states from every shard, by creation time."""
        states = [states] if isinstance(states, str) else list(states)
        fetch_end = -1 if end == -1 else end
        return merge_jobs((q.get_jobs(states, 0, fetch_end, asc) for q in self.queues),
                           start, end, asc)

    def for_each_shard(self, call: Callable[[Queue], Any]) -> list[Any]:
        """``call(queue)`` for every shard (e.g. ``lambda q: q.pause()``)."""
        return [call(queue) for queue in self.queues]

    def pause(self) -> None:
        """Pause every shard."""
        self.for_each_shard(lambda queue: queue.pause())

    def resume(self) -> None:
        """Resume every shard."""
        self.for_each_shard(lambda queue: queue.resume())

    def obliterate(self, force: bool = False) -> None:
        """Remove every shard's data, and the global limits."""
        self.for_each_shard(lambda queue: queue.obliterate(force=force))
        run_sync(self.client, L.remove_plan(self._limits))

    def set_global_concurrency(self, n: int | None) -> None:
        """At most ``n`` jobs active at once over all shards and workers (``None``
        removes it); see the module's text."""
        run_sync(self.client, L.concurrency_plan(self._limits, n))

    def set_global_rate_limit(self, max: int | None, duration: Duration = 0) -> None:
        """At most ``max`` jobs started per ``duration`` seconds over all shards and
        workers (``max=None`` removes it); see the module's text."""
        run_sync(self.client, L.rate_limit_plan(self._limits, max, duration))

    def close(self) -> None:
        """Release the connection (if pyqueue created it)."""
        for queue in self.queues:
            queue.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> ShardedQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncShardedQueue:
    """:class:`ShardedQueue` with an asyncio client; shards are asked concurrently."""

    def __init__(self, name: str, *, shards: int, connection: str | AsyncClient | None = None,
                 prefix: str = "bull", **queue_options: Any) -> None:
        self.name = name
        self._router = Router(name, shards, prefix)
        self.client, self._owns_client = async_client(connection)
        self._limits = L.coordinator_keys(prefix, name)
        #: The shards, as ordinary queues.
        self.queues = [AsyncQueue(n, connection=self.client, prefix=prefix, **queue_options)
                       for n in self._router.names]

    @property
    def shard_names(self) -> list[str]:
        """The sub-queues' names."""
        return list(self._router.names)

    async def add(self, name: str, data: Any = None, *, shard_key: str | None = None,
                  **opts: Any) -> AsyncJob:
        """Add a job to one shard."""
        shard, opts = self._router.place(opts, shard_key)
        return await self.queues[shard].add(name, data, **opts)

    async def add_bulk(self, jobs: Sequence[Mapping[str, Any]]) -> list[AsyncJob]:
        """Add many jobs, the shards concurrently; results in order."""
        placed = self._router.bulk(jobs)
        added = await asyncio.gather(*(self.queues[shard].add_bulk([s for _, s in specs])
                                       for shard, specs in placed.items()))
        out: list[AsyncJob | None] = [None] * len(jobs)
        for specs, jobs_added in zip(placed.values(), added, strict=True):
            for (position, _), job in zip(specs, jobs_added, strict=True):
                out[position] = job
        return [job for job in out if job is not None]

    async def get_job(self, job_id: str) -> AsyncJob | None:
        """The job with that id, from its shard."""
        return await self.queues[self._router.shard_of(job_id)].get_job(job_id)

    async def get_job_counts(self, *states: str) -> dict[str, int]:
        """Counts per state, summed over the shards."""
        return sum_counts(await asyncio.gather(*(q.get_job_counts(*states)
                                                  for q in self.queues)))

    async def get_jobs(self, states: str | Iterable[str], start: int = 0, end: int = -1,
                       asc: bool = False) -> list[AsyncJob]:
        """Jobs in the given states from every shard, by creation time."""
        states = [states] if isinstance(states, str) else list(states)
        lists = await asyncio.gather(*(q.get_jobs(states, 0, end, asc) for q in self.queues))
        return merge_jobs(lists, start, end, asc)

    async def for_each_shard(self, call: Callable[[AsyncQueue], Any]) -> list[Any]:
        """``await call(queue)`` for every shard, concurrently."""
        return list(await asyncio.gather(*(call(queue) for queue in self.queues)))

    async def pause(self) -> None:
        """Pause every shard."""
        await self.for_each_shard(lambda queue: queue.pause())

    async def resume(self) -> None:
        """Resume every shard."""
        await self.for_each_shard(lambda queue: queue.resume())

    async def obliterate(self, force: bool = False) -> None:
        """Remove every shard's data, and the global limits."""
        await self.for_each_shard(lambda queue: queue.obliterate(force=force))
        await run_async(self.client, L.remove_plan(self._limits))

    async def set_global_concurrency(self, n: int | None) -> None:
        """:meth:`ShardedQueue.set_global_concurrency`."""
        await run_async(self.client, L.concurrency_plan(self._limits, n))

    async def set_global_rate_limit(self, max: int | None, duration: Duration = 0) -> None:
        """:meth:`ShardedQueue.set_global_rate_limit`."""
        await run_async(self.client, L.rate_limit_plan(self._limits, max, duration))

    async def close(self) -> None:
        """Release the connection (if pyqueue created it)."""
        for queue in self.queues:
            await queue.close()
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncShardedQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ShardedWorker:
    """Processes a sharded queue: one :class:`~pyqueue.Worker` per shard, each
    with ``concurrency`` slots (so ``shards * concurrency`` jobs at once in
    all, unless a global concurrency is set), sharing one client. Takes
    :class:`~pyqueue.Worker`'s options; ``limiter={"max", "duration"}`` is a
    rate limit over all shards, used while the queue sets none (the queue's
    ``set_global_rate_limit`` wins, as for an unsharded queue)."""

    def __init__(self, name: str, processor: Any, *, shards: int,
                 connection: str | AsyncClient | None = None, prefix: str = "bull",
                 limiter: Mapping[str, Any] | None = None, **worker_options: Any) -> None:
        own_limit = parse_limiter(limiter)
        self.name = name
        router = Router(name, shards, prefix)
        self.client, self._owns_client = async_client(connection)
        #: One worker per shard.
        self.workers = [Worker(n, processor, connection=self.client, prefix=prefix,
                               **worker_options) for n in router.names]
        coordinator = L.coordinator_keys(prefix, name)
        self._gates = [L.ShardLimits(self.client, coordinator, owner=worker.id,
                                     lease_ms=worker.lock_ms, limiter=own_limit)
                       for worker in self.workers]
        for worker, gate in zip(self.workers, self._gates, strict=True):
            worker._use_gate(gate)

    def on(self, event: Any, callback: Callable[..., Any]) -> ShardedWorker:
        """Call ``callback`` on that local event of any shard's worker."""
        for worker in self.workers:
            worker.on(event, callback)
        return self

    @property
    def running(self) -> bool:
        """Whether every shard's worker runs."""
        return all(worker.running for worker in self.workers)

    @property
    def jobs_processed(self) -> int:
        """Jobs finished by all the shards' workers."""
        return sum(worker.jobs_processed for worker in self.workers)

    async def start(self) -> None:
        """Start every shard's worker."""
        await asyncio.gather(*(worker.start() for worker in self.workers))

    async def close(self, force: bool = False) -> None:
        """Close every shard's worker, then the client if pyqueue made it."""
        await asyncio.gather(*(worker.close(force) for worker in self.workers))
        await asyncio.gather(*(gate.close() for gate in self._gates), return_exceptions=True)
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> ShardedWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ShardedQueueEvents:
    """The events of every shard of a sharded queue: one
    :class:`~pyqueue.QueueEvents` per shard, sharing one client, whose events
    go to the same callbacks (job ids are unique across shards). Takes
    :class:`~pyqueue.QueueEvents`' options (``block_ms``, ``last_event_id``...)."""

    def __init__(self, name: str, *, shards: int, connection: str | AsyncClient | None = None,
                 prefix: str = "bull", **events_options: Any) -> None:
        self.name = name
        router = Router(name, shards, prefix)
        self.client, self._owns_client = async_client(connection)
        #: One reader per shard.
        self.readers = [QueueEvents(n, connection=self.client, prefix=prefix, **events_options)
                        for n in router.names]

    def on(self, name: str, callback: Callable[[Event], Any]) -> ShardedQueueEvents:
        """Call ``callback(event)`` for events named ``name`` (``"*"``: all) of any shard."""
        for reader in self.readers:
            reader.on(name, callback)
        return self

    async def start(self) -> None:
        """Start every shard's reader in the background."""
        await asyncio.gather(*(reader.start() for reader in self.readers))

    async def close(self) -> None:
        """Stop every reader, then the client if pyqueue made it."""
        await asyncio.gather(*(reader.close() for reader in self.readers))
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> ShardedQueueEvents:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
