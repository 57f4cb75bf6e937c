"""What the dashboard reads from Redis, as plans (run by ``run_async`` on the app's client).

Every read is bounded: counts are ``LLEN``/``ZCARD``, a page of a state is one
``LRANGE``/``ZREVRANGE`` window, rates are ``ZCOUNT`` over the last minutes of
the ``completed``/``failed`` zsets (scored by ``finishedOn``). Nothing here walks
a whole state, so a queue with a million completed jobs renders as fast as
one with ten. Only the queue list itself is found by ``SCAN`` (cached by the app).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import _ops, _ops_worker
from .. import _scripts as S
from .._keys import QueueKeys
from .._ops_read import DEFAULT_COUNT_STATES
from .._plan import Plan, cmd
from ..errors import PyQueueError

#: Seconds after which a pyqueue worker's heartbeat counts as stale.
HEARTBEAT_STALE = 30.0
#: A delayed job's score is ``due_ms * DELAYED_SEQ + seq`` (BullMQ's format).
DELAYED_SEQ = 4096
#: Failed jobs in the last minute from which a rise is a warning.
FAILURE_WARN_MIN = 5


@dataclass
class QueueSummary:
    """One queue on the overview: counts, flags, rates and what looks wrong."""

    name: str
    counts: dict[str, int]
    paused: bool
    library: str
    workers: int = 0
    completed_last_min: int = 0
    failed_last_min: int = 0
    failed_prev_min: int = 0
    oldest_waiting_age: float | None = None
    concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None
    warnings: list[str] = field(default_factory=list)


def _library(version: str | None) -> str:
    if not version:
        return "unknown"
    return version.split(":", 1)[0]


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def queue_summary(keys: QueueKeys, now_ms: int) -> Plan[QueueSummary]:
    """Counts, pause flag, limits, failure and completion rates, oldest waiting job."""
    counts = yield from _ops.get_counts(keys, ())
    minute = 60_000
    meta_raw, beats, oldest, done1, fail1, fail2 = yield [
        cmd("HGETALL", keys.meta),
        cmd("ZCOUNT", keys.workers, now_ms - int(HEARTBEAT_STALE * 1000), "+inf"),
        cmd("LINDEX", keys.wait, -1),
        cmd("ZCOUNT", keys.completed, now_ms - minute, "+inf"),
        cmd("ZCOUNT", keys.failed, now_ms - minute, "+inf"),
        cmd("ZCOUNT", keys.failed, now_ms - 2 * minute, f"({now_ms - minute}"),
    ]
    meta = S.pairs_to_dict(meta_raw)
    summary = QueueSummary(name=keys.name, counts=counts, paused="paused" in meta,
                           library=_library(meta.get("version")), workers=int(beats),
                           completed_last_min=int(done1), failed_last_min=int(fail1),
                           failed_prev_min=int(fail2))
    concurrency = _int_or_none(meta.get("concurrency"))
    summary.concurrency = concurrency or None
    max_jobs, duration = _int_or_none(meta.get("max")), _int_or_none(meta.get("duration"))
    if max_jobs and duration:
        summary.rate_limit = (max_jobs, duration / 1000)
    if oldest is not None:
        (stamp,) = yield [cmd("HGET", keys.job(S.text(oldest)), "timestamp")]
        added = _int_or_none(S.text(stamp)) if stamp is not None else None
        if added is not None:
            summary.oldest_waiting_age = max(now_ms - added, 0) / 1000
    return summary


def add_warnings(summary: QueueSummary) -> None:
    """What an operator should look at: paused, nobody consuming, failures rising."""
    waiting = summary.counts.get("waiting", 0) + summary.counts.get("prioritized", 0)
    if summary.paused:
        summary.warnings.append("paused: workers take no new jobs")
    if waiting and not summary.workers:
        summary.warnings.append(f"{waiting} job(s) waiting and no worker is consuming")
    if summary.failed_last_min >= FAILURE_WARN_MIN and \
            summary.failed_last_min > summary.failed_prev_min:
        summary.warnings.append(f"failures rising: {summary.failed_last_min} in the last "
                                f"minute, {summary.failed_prev_min} the minute before")


@dataclass
class ClientWorker:
    """A consumer seen in ``CLIENT LIST`` under BullMQ's connection name."""

    queue: str
    name: str
    addr: str
    idle: int


def client_workers(prefix: str) -> Plan[list[ClientWorker]]:
    """BullMQ (and pyqueue) worker connections, from their ``CLIENT LIST`` names
    (``<prefix>:<base64(queue)>:w:<worker name>``); empty when CLIENT is refused."""
    command = cmd("CLIENT", "LIST")
    command.errors_as_values = True
    (reply,) = yield [command]
    if isinstance(reply, PyQueueError) or reply is None:
        return []
    found = []
    for fields in _client_entries(reply):
        parsed = QueueKeys.parse_connection_name(prefix, fields.get("name", ""))
        if parsed is not None:
            found.append(ClientWorker(queue=parsed[0], name=parsed[1],
                                      addr=fields.get("addr", ""),
                                      idle=_int_or_none(fields.get("idle")) or 0))
    return found


def _client_entries(reply: Any) -> list[dict[str, str]]:
    """``CLIENT LIST`` as one dict per connection: redis-py parses it into dicts,
    pyqueue's own connections hand on the text."""
    if isinstance(reply, list):
        return [{S.text(k): S.text(v) for k, v in entry.items()} for entry in reply
                if isinstance(entry, dict)]
    return [dict(part.split("=", 1) for part in line.split(" ") if "=" in part)
            for line in S.text(reply).splitlines()]


def worker_beats(keys: QueueKeys) -> Plan[list[tuple[str, float, dict[str, Any]]]]:
    """pyqueue's heartbeats of the queue's workers (see ``pyqueue health``)."""
    return (yield from _ops_worker.worker_health(keys))


def eviction_policy() -> Plan[str | None]:
    """Redis' ``maxmemory-policy`` (``None`` when CONFIG is refused)."""
    return (yield from _ops_worker.eviction_policy())


def job_logs(keys: QueueKeys, job_id: str, last: int) -> Plan[tuple[list[str], int]]:
    """The last ``last`` log lines of a job and how many lines it has."""
    lines, total = yield [cmd("LRANGE", keys.logs(job_id), -last, -1),
                          cmd("LLEN", keys.logs(job_id))]
    return [S.text(line) for line in lines], int(total)


def delayed_until(keys: QueueKeys, job_id: str) -> Plan[float | None]:
    """When a delayed job is due (epoch seconds), from its score; ``None`` if not delayed."""
    plain, grouped = yield [cmd("ZSCORE", keys.delayed, job_id),
                            cmd("ZSCORE", keys.groups_delayed, job_id)]
    score = plain if plain is not None else grouped
    if score is None:
        return None
    return int(float(S.text(score))) // DELAYED_SEQ / 1000


def job_locked(keys: QueueKeys, job_id: str) -> Plan[bool]:
    """Whether a worker holds the job's lock (it is running)."""
    (reply,) = yield [cmd("EXISTS", keys.lock(job_id))]
    return bool(int(reply))


def existing_job_queues(prefix: str, queues: list[str], job_id: str) -> Plan[list[str]]:
    """The queues among ``queues`` that have a job ``job_id`` (one round trip)."""
    if not queues:
        return []
    replies = yield [cmd("EXISTS", QueueKeys(prefix, q).job(job_id)) for q in queues]
    return [q for q, n in zip(queues, replies, strict=True) if int(n)]


def ping() -> Plan[bool]:
    """Whether Redis answers."""
    command = cmd("PING")
    command.errors_as_values = True
    (reply,) = yield [command]
    return not isinstance(reply, BaseException)


def preview(value: Any, limit: int = 120) -> str:
    """Compact JSON of ``value``, cut to ``limit`` characters."""
    try:
        shown = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


__all__ = ["DEFAULT_COUNT_STATES", "QueueSummary", "add_warnings", "client_workers",
           "delayed_until", "eviction_policy", "existing_job_queues", "job_locked",
           "job_logs", "ping", "preview", "queue_summary", "worker_beats"]
