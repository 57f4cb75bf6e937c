"""Adding jobs: one addJob call per job or per chunk of 1,000, with what Redis acknowledged."""

from __future__ import annotations

from collections.abc import Sequence

from . import _scripts as S
from ._clock import Clock
from ._keys import QueueKeys
from ._plan import Command, Plan, cmd
from .errors import RedisError
from .options import EncodedJob


def add_command(keys: QueueKeys, clock: Clock, now: int, job: EncodedJob) -> Command:
    """The addJob call for one job (the clock must be fresh: see ``Clock.sync``).
    Its reply is ``[job_id, status]`` (see lua/addJob.lua)."""
    return S.add_job(keys, now, job, me=clock.max_events)


#: Jobs per addJob call in add_bulk (one script call adds a whole chunk).
ADD_CHUNK = 1000


def add_jobs(keys: QueueKeys, clock: Clock,
             jobs: Sequence[EncodedJob]) -> Plan[list[tuple[str, int, int, dict[str, str] | None]]]:
    """Add jobs in one round trip (one script call per 1,000 jobs).

    Returns ``(job_id, status, timestamp, existing_fields)`` per job;
    ``existing_fields`` is the stored hash when the add returned an existing
    job (custom id taken, or deduplicated).
    """
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
