"""A queue's numbers for monitoring (the Prometheus collector and ``pyqueue info --watch``),
read at once: counts per state, paused, live workers, the oldest waiting job's
age and BullMQ's completed/failed totals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import _scripts as S
from ._keys import QueueKeys
from ._ops_read import DEFAULT_COUNT_STATES, METRIC_KINDS, get_counts
from ._plan import Plan, cmd

#: A worker whose last heartbeat is older than this (ms) is not counted.
WORKER_STALE_MS = 15_000


@dataclass(frozen=True)
class QueueStats:
    """What a monitoring scrape reports about one queue."""

    queue: str
    counts: dict[str, int]
    paused: bool
    #: pyqueue workers whose heartbeat is fresh.
    workers: int
    #: Seconds the job at the head of the wait list (or of prioritized) has
    #: been ready; None when nothing waits. A delayed job counts from its due time.
    oldest_waiting_age: float | None
    #: BullMQ metrics' totals (``metrics:<kind>`` ``count``) by kind; a kind is
    #: missing when no worker with metrics has finished a job of it.
    finished_totals: dict[str, int]


def queue_stats(keys: QueueKeys, now_ms: int,
                stale_ms: int = WORKER_STALE_MS) -> Plan[QueueStats]:
    """One queue's :class:`QueueStats` (three round trips, reads only)."""
    counts = yield from get_counts(keys, DEFAULT_COUNT_STATES)
    replies = yield [cmd("HEXISTS", keys.meta, "paused"),
                     cmd("ZCOUNT", keys.workers, now_ms - stale_ms, "+inf"),
                     cmd("LINDEX", keys.wait, -1),
                     cmd("ZRANGE", keys.prioritized, 0, 0),
                     *(cmd("HGET", keys.metrics(kind), "count") for kind in METRIC_KINDS)]
    paused, workers, oldest, first_prioritized = replies[:4]
    totals = {kind: int(S.text(value)) for kind, value in zip(METRIC_KINDS, replies[4:],
                                                              strict=True)
              if value is not None}
    heads = [S.text(job_id) for job_id in (oldest, *(first_prioritized or ()))
             if job_id is not None]
    age: float | None = None
    if heads:
        reads = [cmd("HMGET", keys.job(job_id), "timestamp", "delay") for job_id in heads]
        for read in reads:
            read.errors_as_values = True  # a damaged job must not break a scrape
        stamps = yield reads
        for reply in stamps:
            seconds = _ready_for(reply, now_ms)
            if seconds is not None:
                age = seconds if age is None else max(age, seconds)
    return QueueStats(keys.name, counts, bool(paused), int(workers), age, totals)


def _ready_for(reply: Any, now_ms: int) -> float | None:
    """Seconds a job has been ready, from ``HMGET timestamp delay`` (None: removed
    meanwhile, or damaged)."""
    if not isinstance(reply, list | tuple) or len(reply) != 2 or reply[0] is None:
        return None
    try:
        ready_ms = float(S.text(reply[0])) + float(S.text(reply[1] or 0))
    except ValueError:
        return None
    return max(0.0, (now_ms - ready_ms) / 1000)
