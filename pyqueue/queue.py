"""``Queue`` (sync) and ``AsyncQueue`` (asyncio): producing and managing jobs.

Both are thin shells over one description of each operation (``_QueueCore``
builds plans; the shells run them with a ``redis.Redis`` or a
``redis.asyncio.Redis`` client), so they cannot drift apart.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import redis
import redis.asyncio

from . import _ops, _schedule
from ._keys import QueueKeys, validate_prefix, validate_queue_name
from ._plan import (
    Plan,
    async_transport,
    cmd,
    run_async,
    run_sync,
    single,
    sync_transport,
)
from ._resp import PipelinedConnection, SyncConnection, options_from
from .connection import SOCKET_TIMEOUT, async_client, sync_client
from .errors import InvalidJobOptionsError
from .job import AsyncJob, Binding, Job, JobBase
from .options import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    AddOptions,
    BulkJob,
    Duration,
    EncodedJob,
    duration_ms,
    encode_job,
    encode_options,
    merge_options,
    validate_group,
)

if sys.version_info >= (3, 11):
    from typing import Unpack
elif TYPE_CHECKING:  # Python 3.10: only type checkers need it (they ship typing_extensions)
    from typing_extensions import Unpack

T = TypeVar("T")
J = TypeVar("J", bound=JobBase)

ConnectionArg = str | redis.Redis | redis.asyncio.Redis | None


def _ttl_seconds(pttl: Any) -> float:
    ms = int(pttl)
    return ms / 1000 if ms > 0 else 0.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _QueueCore(Generic[J]):
    """Validation and plans shared by ``Queue`` and ``AsyncQueue``; ``J`` is the
    job class the shell hands out (``Job`` or ``AsyncJob``)."""

    def __init__(self, job_class: type[J], name: str, *, prefix: str = "bull",
                 default_job_options: Mapping[str, Any] | None = None,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        self.job_class = job_class
        self.name = validate_queue_name(name)
        self.prefix = validate_prefix(prefix)
        self.keys = QueueKeys(self.prefix, self.name)
        self.clock = _ops.Clock(meta_key=self.keys.meta)
        if default_job_options is not None and not isinstance(default_job_options, Mapping):
            raise InvalidJobOptionsError(
                f"default_job_options must be a mapping, got {default_job_options!r}"
            )
        self.default_job_options = dict(default_job_options or {})
        if isinstance(max_payload_bytes, bool) or not isinstance(max_payload_bytes, int) \
                or max_payload_bytes <= 0:
            raise InvalidJobOptionsError(
                f"max_payload_bytes must be a positive int, got {max_payload_bytes!r}"
            )
        self.max_payload_bytes = max_payload_bytes
        # Validated now, so a bad default fails at construction; encoded once
        # for every job added without options of its own.
        self._default_options = encode_options(self.default_job_options)

    def encode(self, name: str, data: Any, opts: Mapping[str, Any]) -> EncodedJob:
        options = encode_options(merge_options(self.default_job_options, opts)) if opts \
            else self._default_options
        return encode_job(name, data, options, max_payload_bytes=self.max_payload_bytes)

    def encode_bulk(self, jobs: Sequence[BulkJob] | Sequence[Mapping[str, Any]]
                    ) -> list[EncodedJob]:
        if not isinstance(jobs, Sequence) or isinstance(jobs, str | bytes):
            raise InvalidJobOptionsError(f"add_bulk takes a list of jobs, got {jobs!r}")
        encoded = []
        for i, spec in enumerate(jobs):
            if not isinstance(spec, Mapping) or "name" not in spec:
                raise InvalidJobOptionsError(
                    f"add_bulk: job {i} must be a mapping with 'name', 'data' and optional "
                    f"'opts', got {spec!r}"
                )
            unknown = set(spec) - {"name", "data", "opts"}
            if unknown:
                raise InvalidJobOptionsError(f"add_bulk: job {i} has unknown keys "
                                             f"{sorted(unknown)}")
            opts = spec.get("opts") or {}
            if not isinstance(opts, Mapping):
                raise InvalidJobOptionsError(f"add_bulk: job {i} opts must be a mapping")
            encoded.append(self.encode(spec["name"], spec.get("data"), opts))
        return encoded

    def add_plan(self, jobs: list[EncodedJob], binding: Binding) -> Plan[list[J]]:
        results = yield from _ops.add_jobs(self.keys, self.clock, jobs)
        out = []
        for job, (job_id, _status, now, existing) in zip(jobs, results, strict=True):
            if existing is not None:
                out.append(self.job_class(binding, job_id, existing))
            else:
                out.append(self.new_job(job, job_id, now, binding))
        return out

    def add_one_plan(self, job: EncodedJob, binding: Binding) -> Plan[J]:
        """``add``: one script call (the hot path of producers, so one generator)."""
        clock = self.clock
        if not clock.fresh():
            yield from clock.sync()
        now = clock.now_ms()
        (reply,) = yield [_ops.add_command(self.keys, clock, now, job)]
        job_id = _text(reply[0])
        if int(reply[1]) == 1:
            return self.new_job(job, job_id, now, binding)
        # The job existed (custom id) or was deduplicated: return that one.
        fields = yield from _ops.get_job_hash(self.keys, job_id)
        return self.job_class(binding, job_id, fields or {})

    def new_job(self, job: EncodedJob, job_id: str, now: int, binding: Binding) -> J:
        """The ``Job`` just written by an add, from what was sent."""
        options = job.options
        fields = {"name": job.name, "data": job.data, "opts": options.opts,
                  "timestamp": str(now), "delay": str(options.delay_ms),
                  "priority": str(options.priority)}
        if options.group is not None:
            fields["gid"] = options.group
        return self.job_class(binding, job_id, fields, data=job.value)

    def get_job_plan(self, job_id: str, binding: Binding) -> Plan[J | None]:
        fields = yield from _ops.get_job_hash(self.keys, str(job_id))
        return self.job_class(binding, str(job_id), fields) if fields else None

    def get_jobs_plan(self, states: str | Iterable[str], start: int, end: int, asc: bool,
                      binding: Binding) -> Plan[list[J]]:
        wanted = [states] if isinstance(states, str) else list(states)
        found = yield from _ops.get_jobs(self.keys, wanted, start, end, asc)
        return [self.job_class(binding, job_id, fields) for job_id, fields in found]

    def script(self, name: str, op: str, **params: Any) -> Plan[Any]:
        return _ops.simple(name, self.keys, self.clock, op=op, **params)

    def obliterate_plan(self, force: bool) -> Plan[None]:
        yield from _ops.repeat_until_done("obliterate", self.keys, self.clock,
                                          op="obliterate", force=force, batch=_ops.BATCH)

    def drain_plan(self, delayed: bool) -> Plan[None]:
        yield from _ops.repeat_until_done("drain", self.keys, self.clock, op="drain",
                                          delayed=delayed, batch=_ops.BATCH)

    def clean_plan(self, grace: Duration, limit: int, state: str) -> Plan[list[str]]:
        grace_ms = duration_ms(grace, "grace")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidJobOptionsError(f"limit must be an int >= 0, got {limit!r}")
        normalized = _ops.normalize_state(state)
        internal = {"waiting": "wait"}.get(normalized, normalized)
        if internal == "waiting-children":
            raise InvalidJobOptionsError("clean: state 'waiting-children' is not supported")
        return _ops.clean(self.keys, self.clock, grace_ms, limit, internal)

    def retry_jobs_plan(self, state: str, count: int) -> Plan[int]:
        if state not in ("failed", "completed"):
            raise InvalidJobOptionsError(
                f"retry_jobs: state must be 'failed' or 'completed', got {state!r}"
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidJobOptionsError(f"count must be an int >= 1, got {count!r}")
        return _ops.retry_all(self.keys, self.clock, state, count)

    def concurrency_plan(self, n: int | None) -> Plan[None]:
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise InvalidJobOptionsError(f"concurrency must be an int >= 0 or None, got {n!r}")
        return self.script("setGlobalLimits", "set_global_concurrency", concurrency=n or 0)

    def group_limits_plan(self, group: str | None, **limits: Any) -> Plan[None]:
        gid = "*" if group is None else validate_group(group)
        concurrency = limits.get("concurrency")
        if concurrency is not None and (isinstance(concurrency, bool)
                                        or not isinstance(concurrency, int) or concurrency < 0):
            raise InvalidJobOptionsError(
                f"concurrency must be an int >= 0 or None, got {concurrency!r}")
        params: dict[str, Any] = {"gid": gid, "concurrency": concurrency}
        if "max" in limits:
            max_jobs = limits["max"]
            if max_jobs is not None and (isinstance(max_jobs, bool)
                                         or not isinstance(max_jobs, int) or max_jobs < 0):
                raise InvalidJobOptionsError(f"max must be an int >= 0 or None, got {max_jobs!r}")
            params["max"] = max_jobs or 0
            params["durationMs"] = duration_ms(limits.get("duration", 0), "duration",
                                               allow_zero=not max_jobs)
        return self.script("setGroupLimits", "set_group_limits", **params)

    def scheduler_plan(self, scheduler_id: str, binding: Binding,
                       **settings: Any) -> Plan[J]:
        params = _schedule.upsert_params(scheduler_id, max_payload_bytes=self.max_payload_bytes,
                                         **settings)
        job_id, _ = yield from _schedule.upsert_plan(self.keys, self.clock, params)
        fields = yield from _ops.get_job_hash(self.keys, job_id)
        return self.job_class(binding, job_id, fields or {})

    def repeat_plan(self, name: str, data: Any, opts: Mapping[str, Any],
                    binding: Binding) -> Plan[J]:
        """``add(..., repeat={...})``: a scheduler keyed by ``job_id`` or name + pattern."""
        opts = dict(opts)
        repeat = opts.pop("repeat")
        if not isinstance(repeat, Mapping):
            raise InvalidJobOptionsError(f"repeat must be a mapping, got {repeat!r}")
        allowed = {"pattern", "every", "tz", "limit", "start_date", "end_date", "immediately",
                   "offset"}
        unknown = set(repeat) - allowed
        if unknown:
            raise InvalidJobOptionsError(f"repeat has unknown keys {sorted(unknown)}")
        job_id = opts.pop("job_id", None)
        scheduler_id = job_id or f"{name}:{repeat.get('pattern') or repeat.get('every')}"
        template = {"name": name, "data": data,
                    "opts": merge_options(self.default_job_options, opts)}
        return (yield from self.scheduler_plan(scheduler_id, binding, template=template,
                                               **repeat))

    def cancel_plan(self, job_id: str, reason: str, remove: bool) -> Plan[str]:
        if not isinstance(reason, str) or not reason:
            raise InvalidJobOptionsError(f"reason must be a non-empty str, got {reason!r}")
        status = yield from self.script("cancelJob", "cancel_job", job_id=str(job_id),
                                        id=str(job_id), reason=reason, remove=remove)
        return {0: "finished", 1: "cancelled", 2: "requested"}[int(status)]

    def rate_limit_plan(self, max_jobs: int | None, duration: Duration) -> Plan[None]:
        if max_jobs is not None and (isinstance(max_jobs, bool) or not isinstance(max_jobs, int)
                                     or max_jobs < 0):
            raise InvalidJobOptionsError(f"max must be an int >= 0 or None, got {max_jobs!r}")
        ms = duration_ms(duration, "duration", allow_zero=not max_jobs)
        return self.script("setGlobalLimits", "set_global_rate_limit", max=max_jobs or 0,
                           durationMs=ms)


class Queue:
    """A queue for producing and managing jobs, with a synchronous client.

    ``connection`` is a URL, a ``redis.Redis`` client, or ``None`` (then
    ``$PYQUEUE_REDIS_URL``, ``$REDIS_URL`` or the embedded server).
    """

    def __init__(self, name: str, *, connection: str | redis.Redis | None = None,
                 prefix: str = "bull", default_job_options: Mapping[str, Any] | None = None,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 pipelined: bool = True) -> None:
        self._core = _QueueCore(Job, name, prefix=prefix,
                                default_job_options=default_job_options,
                                max_payload_bytes=max_payload_bytes)
        self.client, self._owns_client = sync_client(connection)
        options = options_from(self.client) if pipelined else None
        #: Commands go through a lean per-thread connection when the client's
        #: settings allow it (they do unless RESP3, caching or a custom class).
        self._fast = SyncConnection(options, SOCKET_TIMEOUT) if options is not None else None
        self._transport = sync_transport(self._fast or self.client)
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
        return None if value is None else _text(value)

    def remove_deduplication_key(self, dedup_id: str) -> bool:
        """Release deduplication id ``dedup_id`` now (the next add with it is accepted)."""
        return bool(self._run(single(cmd("DEL", self._core.keys.dedup(dedup_id)))))

    def get_job_state(self, job_id: str) -> str:
        """``waiting``, ``prioritized``, ``delayed``, ``active``, ``completed``,
        ``failed``, ``waiting-children`` or ``unknown``."""
        return self._run(_ops.get_state(self._core.keys, self._core.clock, str(job_id)))

    def get_job_counts(self, *states: str) -> dict[str, int]:
        """Counts per state (all states when none are given)."""
        return self._run(_ops.get_counts(self._core.keys, states))

    def get_jobs(self, states: str | Iterable[str], start: int = 0, end: int = -1,
                 asc: bool = False) -> list[Job]:
        """Jobs in the given states, newest first unless ``asc``."""
        return self._run(self._core.get_jobs_plan(states, start, end, asc, self._binding))

    def pause(self) -> None:
        """Pause the queue for every worker: they finish active jobs and take no new ones."""
        self._run(self._core.script("pause", "pause", pause=True))

    def resume(self) -> None:
        """Resume a paused queue."""
        self._run(self._core.script("pause", "resume", pause=False))

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
        return bool(self._run(self._core.script("removeJob", "remove", id=str(job_id))))

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
        return bool(self._run(self._core.script("removeJobScheduler", "remove_job_scheduler",
                                                id=scheduler_id)))

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

    def rate_limit(self, duration: Duration) -> None:
        """Stop every worker of the queue from taking jobs for ``duration`` seconds."""
        ms = duration_ms(duration, "duration", allow_zero=False)
        self._run(single(cmd("SET", self._core.keys.limiter, 2**53 - 1, "PX", ms)))

    def get_rate_limit_ttl(self) -> float:
        """Seconds until the queue's rate limit lets jobs start again (0 when it
        is not limited now)."""
        return _ttl_seconds(self._run(single(cmd("PTTL", self._core.keys.limiter))))

    def close(self) -> None:
        """Release the connection (if pyqueue created it)."""
        if self._fast is not None:
            self._fast.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Queue {self.prefix}:{self.name}>"


class AsyncQueue:
    """``Queue`` for asyncio programs: the same methods, as coroutines."""

    def __init__(self, name: str, *, connection: str | redis.asyncio.Redis | None = None,
                 prefix: str = "bull", default_job_options: Mapping[str, Any] | None = None,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 pipelined: bool = True) -> None:
        self._core = _QueueCore(AsyncJob, name, prefix=prefix,
                                default_job_options=default_job_options,
                                max_payload_bytes=max_payload_bytes)
        self.client, self._owns_client = async_client(connection)
        options = options_from(self.client) if pipelined else None
        self._fast = PipelinedConnection(options, SOCKET_TIMEOUT) if options is not None \
            else None
        self._transport = async_transport(self._fast or self.client)
        self._binding = Binding(self._core.keys, self._core.clock, self._run, is_async=True,
                                run_blocking=self._run_blocking)

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
        """Add a job; returns it (the existing one for a taken ``job_id``)."""
        if opts.get("repeat") is not None:
            return await self._run(self._core.repeat_plan(name, data, opts, self._binding))
        encoded = self._core.encode(name, data, opts)
        # run_async directly, not through _run: one coroutine less on the hot path.
        return await run_async(self._transport, self._core.add_one_plan(encoded, self._binding))

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
        return None if value is None else _text(value)

    async def remove_deduplication_key(self, dedup_id: str) -> bool:
        """Release deduplication id ``dedup_id`` now."""
        return bool(await self._run(single(cmd("DEL", self._core.keys.dedup(dedup_id)))))

    async def get_job_state(self, job_id: str) -> str:
        """The job's state in BullMQ's words (see ``Queue.get_job_state``)."""
        return await self._run(_ops.get_state(self._core.keys, self._core.clock, str(job_id)))

    async def get_job_counts(self, *states: str) -> dict[str, int]:
        """Counts per state (all states when none are given)."""
        return await self._run(_ops.get_counts(self._core.keys, states))

    async def get_jobs(self, states: str | Iterable[str], start: int = 0, end: int = -1,
                       asc: bool = False) -> list[AsyncJob]:
        """Jobs in the given states, newest first unless ``asc``."""
        return await self._run(self._core.get_jobs_plan(states, start, end, asc,
                                                        self._binding))

    async def pause(self) -> None:
        """Pause the queue for every worker."""
        await self._run(self._core.script("pause", "pause", pause=True))

    async def resume(self) -> None:
        """Resume a paused queue."""
        await self._run(self._core.script("pause", "resume", pause=False))

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
        return bool(await self._run(self._core.script("removeJob", "remove", id=str(job_id))))

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
        return bool(await self._run(self._core.script(
            "removeJobScheduler", "remove_job_scheduler", id=scheduler_id)))

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

    async def rate_limit(self, duration: Duration) -> None:
        """Stop every worker of the queue from taking jobs for ``duration`` seconds."""
        ms = duration_ms(duration, "duration", allow_zero=False)
        await self._run(single(cmd("SET", self._core.keys.limiter, 2**53 - 1, "PX", ms)))

    async def get_rate_limit_ttl(self) -> float:
        """Seconds until the rate limit lets jobs start again (0 when not limited)."""
        return _ttl_seconds(await self._run(single(cmd("PTTL", self._core.keys.limiter))))

    async def close(self) -> None:
        """Release the connection (if pyqueue created it)."""
        if self._fast is not None:
            await self._fast.aclose()
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncQueue {self.prefix}:{self.name}>"
