"""A worker's bookkeeping in Redis: heartbeat, sign-off, cancellation requests, rate-limit pause."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from . import _scripts as S
from ._keys import QueueKeys
from ._plan import Plan, cmd
from .errors import PyQueueError

#: The limiter value that makes every worker of the queue wait out its TTL.
LIMITER_FULL = 2**53 - 1


def heartbeat(keys: QueueKeys, worker_id: str, now_ms: int, info: str) -> Plan[None]:
    """Publish the worker's heartbeat (``pq:workers``) and health JSON (``pq:workerinfo``)."""
    yield [cmd("ZADD", keys.workers, now_ms, worker_id),
           cmd("HSET", keys.worker_info, worker_id, info)]


def sign_off(keys: QueueKeys, worker_id: str) -> Plan[None]:
    """Remove the worker from ``pyqueue health``'s view (it closed)."""
    yield [cmd("ZREM", keys.workers, worker_id), cmd("HDEL", keys.worker_info, worker_id)]


def cancel_requests(keys: QueueKeys,
                    held: Iterable[str]) -> Plan[list[tuple[str, str, bool]]]:
    """Cancellation requests for the jobs in ``held``: ``(job_id, reason, remove)``."""
    (raw,) = yield [cmd("SMEMBERS", keys.cancel)]
    wanted = set(held)
    ids = [job_id for job_id in (S.text(m) for m in raw) if job_id in wanted]
    if not ids:
        return []
    replies = yield [cmd("HMGET", keys.job(job_id), "pqcx", "pqcxrm") for job_id in ids]
    return [(job_id, S.text(reason) if reason else "cancelled", bool(remove))
            for job_id, (reason, remove) in zip(ids, replies, strict=True)]


def pause_fetching(keys: QueueKeys, ms: int) -> Plan[None]:
    """Fill the queue's limiter for ``ms``: no worker takes a job until it expires."""
    yield [cmd("SET", keys.limiter, LIMITER_FULL, "PX", ms)]


def eviction_policy() -> Plan[str | None]:
    """Redis' ``maxmemory-policy``, or None when CONFIG is refused (managed Redis)."""
    command = cmd("CONFIG", "GET", "maxmemory-policy")
    command.errors_as_values = True  # CONFIG disabled or not allowed: nothing to check
    (reply,) = yield [command]
    if isinstance(reply, PyQueueError) or not reply:
        return None
    return S.pairs_to_dict(reply).get("maxmemory-policy")


def _score_pairs(reply: Any) -> list[tuple[str, float]]:
    """A ``ZRANGE ... WITHSCORES`` reply as ``(member, score)`` pairs."""
    if reply and isinstance(reply[0], list | tuple):  # RESP3 or parsed by the client
        return [(S.text(member), float(score)) for member, score in reply]
    return [(S.text(reply[i]), float(reply[i + 1])) for i in range(0, len(reply), 2)]


def worker_health(keys: QueueKeys) -> Plan[list[tuple[str, float, dict[str, Any]]]]:
    """Each worker that reported: ``(worker_id, heartbeat ms, health info)``."""
    beats, infos = yield [cmd("ZRANGE", keys.workers, 0, -1, "WITHSCORES"),
                          cmd("HGETALL", keys.worker_info)]
    info = S.pairs_to_dict(infos)
    return [(worker_id, score, json.loads(info[worker_id]) if info.get(worker_id) else {})
            for worker_id, score in _score_pairs(beats)]
