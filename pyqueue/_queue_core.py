"""The plans behind ``Queue`` and ``AsyncQueue``: every queue operation validated and
described once (``QueueCore``), so the sync and asyncio shells cannot drift apart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, Generic, TypeVar

from . import _ops, _ops_dlq, _ops_flow, _schedule
from . import _scripts as S
from ._keys import QueueKeys, validate_prefix, validate_queue_name
from ._ops_add import Added
from ._plan import Plan
from .errors import InvalidJobOptionsError
from .job import Binding, JobBase
from .options import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    BulkJob,
    Duration,
    EncodedJob,
    duration_ms,
    encode_job,
    encode_options,
    merge_options,
    validate_group,
)

J = TypeVar("J", bound=JobBase)


def ttl_seconds(pttl: Any) -> float:
    ms = int(pttl)
    return ms / 1000 if ms > 0 else 0.0


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class QueueCore(Generic[J]):
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
        return [self.job_from(job, added, binding)
                for job, added in zip(jobs, results, strict=True)]

    def job_from(self, job: EncodedJob, added: Added, binding: Binding) -> J:
        """The ``Job`` an add gave: the one just written, or the existing one it
        returned (custom id taken, or deduplicated)."""
        job_id, _status, now, existing = added
        if existing is not None:
            return self.job_class(binding, job_id, existing)
        return self.new_job(job, job_id, now, binding)

    def add_one_plan(self, job: EncodedJob, binding: Binding) -> Plan[J]:
        """``add``: one script call (the hot path of producers, so one generator)."""
        clock = self.clock
        if clock.needs_sync(register=True):
            yield from clock.sync(register=True)
        now = clock.now_ms()
        (reply,) = yield [_ops.add_command(self.keys, clock, now, job)]
        job_id = text(reply[0])
        if int(reply[1]) == 1:
            return self.new_job(job, job_id, now, binding)
        # The job existed (custom id) or was deduplicated: return that one.
        fields = yield from _ops.get_job_hash(self.keys, job_id)
        return self.job_class(binding, job_id, fields or {})

    def child_plan(self, name: str, data: Any, opts: Mapping[str, Any],
                   binding: Binding) -> Plan[J]:
        """``add(..., parent={"id", "queue"})``: one job that its (existing) parent
        waits for; an addFlow call of one node (see lua/addFlow.lua)."""
        tree = {"name": name, "queue_name": self.name, "data": data, "opts": opts}
        specs = _ops_flow.encode_tree(tree, self.prefix, {self.name: self.default_job_options},
                                      max_payload_bytes=self.max_payload_bytes)
        ((status, ids, now),) = yield from _ops_flow.add_trees(self.clock, [specs])
        if status == 0:  # the custom id existed: that job
            fields = yield from _ops.get_job_hash(self.keys, ids[0])
            return self.job_class(binding, ids[0], fields or {})
        fields = _ops_flow.stored_fields(specs[0], specs, ids, now)
        return self.job_class(binding, ids[0], fields, data=specs[0].job.value)

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

    def replay_dead_letters_plan(self, rate: float | None, **filters: Any) -> Plan[list[str]]:
        """``replay_dead_letters`` (filters and rate checked now, before the plan
        runs)."""
        wanted = _ops_dlq.filters(**filters)
        pace = _ops_dlq.check_rate(rate)
        return _ops_dlq.replay_plan(self.keys, self.clock, wanted, pace)

    def purge_dead_letters_plan(self, **filters: Any) -> Plan[int]:
        """``purge_dead_letters`` (filters checked now, before the plan runs)."""
        return _ops_dlq.purge_plan(self.keys, self.clock, _ops_dlq.filters(**filters))

    def dead_letters_plan(self, start: int, end: int, wanted: _ops_dlq.Filters,
                          binding: Binding) -> Plan[list[J]]:
        """Dead-letter entries ``start..end`` (inclusive, oldest first) as jobs of
        the dead-letter queue."""
        for value, label in ((start, "start"), (end, "end")):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidJobOptionsError(f"{label} must be an int, got {value!r}")
        if start >= 0 and end >= 0:  # read no further than needed
            wanted = replace(wanted, limit=end + 1)
        dkeys, entries = yield from _ops_dlq.select_plan(self.keys, wanted)
        chosen = entries[start:None if end == -1 else end + 1]
        found = yield from _ops_dlq.fields_plan(dkeys, chosen)
        dlq_binding = replace(binding, keys=dkeys)
        return [self.job_class(dlq_binding, job_id, fields) for job_id, fields in found]

    def pause_plan(self, pause: bool) -> Plan[Any]:
        return _ops.simple(self.clock, partial(S.pause, self.keys, pause=pause),
                           op="pause" if pause else "resume")

    def remove_plan(self, job_id: str) -> Plan[Any]:
        return _ops.simple(self.clock, partial(S.remove_job, self.keys, id=job_id),
                           op="remove")

    def remove_scheduler_plan(self, scheduler_id: str) -> Plan[Any]:
        return _ops.simple(self.clock, partial(S.remove_job_scheduler, self.keys,
                                               id=scheduler_id),
                           op="remove_job_scheduler")

    def obliterate_plan(self, force: bool) -> Plan[None]:
        yield from _ops.repeat_until_done(
            self.clock, partial(S.obliterate, self.keys, force=force, batch=_ops.BATCH),
            op="obliterate")

    def drain_plan(self, delayed: bool) -> Plan[None]:
        yield from _ops.repeat_until_done(
            self.clock, partial(S.drain, self.keys, delayed=delayed, batch=_ops.BATCH),
            op="drain")

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
        return _ops.simple(self.clock, partial(S.set_global_limits, self.keys,
                                               concurrency=n or 0),
                           op="set_global_concurrency")

    def group_limits_plan(self, group: str | None, **limits: Any) -> Plan[None]:
        gid = "*" if group is None else validate_group(group)
        concurrency = limits.get("concurrency")
        if concurrency is not None and (isinstance(concurrency, bool)
                                        or not isinstance(concurrency, int) or concurrency < 0):
            raise InvalidJobOptionsError(
                f"concurrency must be an int >= 0 or None, got {concurrency!r}")
        max_jobs, ms = None, None
        if "max" in limits:
            max_jobs = limits["max"]
            if max_jobs is not None and (isinstance(max_jobs, bool)
                                         or not isinstance(max_jobs, int) or max_jobs < 0):
                raise InvalidJobOptionsError(f"max must be an int >= 0 or None, got {max_jobs!r}")
            ms = duration_ms(limits.get("duration", 0), "duration", allow_zero=not max_jobs)
            max_jobs = max_jobs or 0
        return _ops.simple(self.clock, partial(S.set_group_limits, self.keys, gid=gid,
                                               concurrency=concurrency, max=max_jobs,
                                               duration_ms=ms),
                           op="set_group_limits")

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
        if opts.get("parent") is not None:
            raise InvalidJobOptionsError("repeat and parent cannot go together: a job "
                                         "scheduler's iterations cannot be flow children")
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
        status = yield from _ops.simple(
            self.clock, partial(S.cancel_job, self.keys, id=str(job_id), reason=reason,
                                remove=remove), op="cancel_job", job_id=str(job_id))
        return {0: "finished", 1: "cancelled", 2: "requested"}[int(status)]

    def rate_limit_plan(self, max_jobs: int | None, duration: Duration) -> Plan[None]:
        if max_jobs is not None and (isinstance(max_jobs, bool) or not isinstance(max_jobs, int)
                                     or max_jobs < 0):
            raise InvalidJobOptionsError(f"max must be an int >= 0 or None, got {max_jobs!r}")
        ms = duration_ms(duration, "duration", allow_zero=not max_jobs)
        return _ops.simple(self.clock, partial(S.set_global_limits, self.keys,
                                               max=max_jobs or 0, duration_ms=ms),
                           op="set_global_rate_limit")
