"""Adding jobs: one addJob call per job or per chunk of 1,000, with what Redis acknowledged."""

from __future__ import annotations

from collections.abc import Sequence

import redis.exceptions as rexc

from . import _scripts as S
from ._clock import Clock
from ._keys import QueueKeys
from ._plan import Command, Plan, cmd, translate
from .errors import RedisError
from .options import EncodedJob

#: What an add gives back: ``(job_id, status, timestamp, existing_fields)``,
#: ``existing_fields`` the stored hash when the add returned an existing job
#: (custom id taken, or deduplicated), else ``None``.
Added = tuple[str, int, int, dict[str, str] | None]


def add_command(keys: QueueKeys, clock: Clock, now: int, job: EncodedJob) -> Command:
    """The addJob call for one job (the clock must be fresh: see ``Clock.sync``).
    Its reply is ``[job_id, status]`` (see lua/addJob.lua)."""
    return S.add_job(keys, now, job, me=clock.max_events)


#: Jobs per addJob call in add_bulk (one script call adds a whole chunk).
ADD_CHUNK = 1000


def add_jobs(keys: QueueKeys, clock: Clock, jobs: Sequence[EncodedJob]) -> Plan[list[Added]]:
    """Add jobs in one round trip (one script call per 1,000 jobs); an
    :data:`Added` per job."""
    try:
        yield from clock.sync(register=True)
    except RedisError as exc:  # before any add was sent: none was applied
        exc.acknowledged_ids = []
        raise
    now = clock.now_ms()
    if len(jobs) == 1:
        try:
            (reply,) = yield [add_command(keys, clock, now, jobs[0])]
        except RedisError as exc:
            raise _partly_added(exc, [], 1, 1) from exc.__cause__
        replies = [reply]
    else:
        calls = []
        for i in range(0, len(jobs), ADD_CHUNK):
            call = S.add_jobs(keys, now, jobs[i:i + ADD_CHUNK], me=clock.max_events)
            call.errors_as_values = True  # see which chunks Redis confirmed
            calls.append(call)
        try:
            chunks = yield calls
        except RedisError as exc:  # no reply at all: nothing is known
            raise _partly_added(exc, [], len(calls), len(calls)) from exc.__cause__
        failed = [chunk for chunk in chunks if isinstance(chunk, RedisError)]
        if failed:
            acknowledged = [S.text(r[0]) for chunk in chunks
                            if not isinstance(chunk, RedisError) for r in chunk]
            raise _partly_added(failed[0], acknowledged, len(failed), len(calls)) \
                from failed[0].__cause__
        replies = [reply for chunk in chunks for reply in chunk]
    results = [(S.text(r[0]), int(r[1])) for r in replies]
    existing = [job_id for job_id, status in results if status != 1]
    hashes: dict[str, dict[str, str]] = {}
    if existing:
        fetched = yield [cmd("HGETALL", keys.job(job_id)) for job_id in existing]
        hashes = {job_id: S.pairs_to_dict(h) for job_id, h in zip(existing, fetched,
                                                                   strict=True)}
    return [(job_id, status, now, hashes.get(job_id) if status != 1 else None)
            for job_id, status in results]


def add_each(keys: QueueKeys, clock: Clock,
             jobs: Sequence[EncodedJob]) -> Plan[list[Added | RedisError]]:
    """Separate callers' adds in one round trip (``AsyncQueue``'s batching of
    concurrent adds: one script call per 1,000 jobs, in order, so job ids,
    events and deduplication come out as sequential adds would).

    Gives each job its own outcome: an :data:`Added`, or the error of that job
    alone (a Redis error while adding it, or its call's failure when that call
    failed whole). Raises only when nothing is known of any of them.
    """
    if clock.needs_sync(register=True):
        yield from clock.sync(register=True)
    now = clock.now_ms()
    calls = []
    for i in range(0, len(jobs), ADD_CHUNK):
        call = S.add_jobs(keys, now, jobs[i:i + ADD_CHUNK], me=clock.max_events, each=True)
        call.errors_as_values = True  # a chunk that fails fails its own jobs only
        calls.append(call)
    chunks = yield calls
    outcomes: list[tuple[str, int] | RedisError] = []
    for i, chunk in enumerate(chunks):
        if isinstance(chunk, RedisError):
            outcomes += [chunk] * min(ADD_CHUNK, len(jobs) - i * ADD_CHUNK)
            continue
        for reply in chunk:
            status = int(reply[1])
            outcomes.append(translate(rexc.ResponseError(S.text(reply[2]))) if status < 0
                            else (S.text(reply[0]), status))
    existing = [o[0] for o in outcomes if not isinstance(o, RedisError) and o[1] != 1]
    hashes: dict[str, dict[str, str] | RedisError] = {}
    if existing:
        reads = [cmd("HGETALL", keys.job(job_id)) for job_id in existing]
        for read in reads:
            read.errors_as_values = True  # a damaged hash fails its own caller only
        fetched = yield reads
        hashes = {job_id: h if isinstance(h, RedisError) else S.pairs_to_dict(h)
                  for job_id, h in zip(existing, fetched, strict=True)}
    return [_outcome(o, now, hashes) for o in outcomes]


def _outcome(result: tuple[str, int] | RedisError, now: int,
             hashes: dict[str, dict[str, str] | RedisError]) -> Added | RedisError:
    if isinstance(result, RedisError):
        return result
    job_id, status = result
    if status == 1:
        return (job_id, status, now, None)
    fields = hashes[job_id]
    return fields if isinstance(fields, RedisError) else (job_id, status, now, fields)


def _partly_added(error: RedisError, acknowledged: list[str], failed: int,
                  chunks: int) -> RedisError:
    """``error`` again (same class and code), saying what is known of the adds."""
    done = f"{len(acknowledged)} job(s) were added; " if acknowledged else ""
    again = type(error)(
        f"add_bulk failed: {error}. {done}{failed} of {chunks} chunk(s) failed or went "
        "unanswered and may or may not have been applied (give jobs a job_id to make a "
        "retry safe); acknowledged_ids lists the jobs known to be added", error.code)
    again.acknowledged_ids = acknowledged
    return again
