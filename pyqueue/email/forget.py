"""GDPR erase ("right to be forgotten") for one address on a mail queue.

:func:`forget` (and ``pyqueue email --queue Q forget ADDRESS``) removes,
from queue ``Q`` and its dead-letter queues (``Q-dlq``, and the queue's
generic dead-letter queue when one is set):

- every job that mentions the address, in any state (waiting, prioritized,
  delayed, paused, grouped, completed, failed, waiting-children, active once
  its worker lets go): its hash, logs, lock and dependency keys, through the
  same script as ``queue.remove`` (so state lists, groups and deduplication
  stay consistent);
- the entries of the queue's event stream that mention it or those jobs
  (``completed`` events carry return values, ``failed`` ones reasons);
- its soft-bounce counter and per-recipient limit windows;
- its plain suppression entry, replaced by ``sha256:<digest>``: the address
  stays suppressed (a later send to it is still skipped) but is not stored.

Addresses compare case-insensitively and as whole addresses
(``da@example.com`` does not match ``ada@example.com``). A job is found by
searching every field of its hash and its log lines, so the cost is one pass
over the queue's keys (``SCAN``): an admin operation, not a hot path. A job
that stays active (locked by a worker) for ``wait`` seconds is left and
counted under ``busy``; run it again once the worker is done.

On a Redis Cluster every key of a queue carries its hash tag, so all of them
sit in one slot on one primary: the ``SCAN`` goes to that primary only (per
queue: a dead-letter queue's slot is looked up on its own), and the reads and
deletes go through the cluster client, which follows a slot that moved. A
resharding that moves the queue's slot during the scan can hide keys from
it; run ``forget`` again afterwards.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import redis
import redis.cluster

from .._keys import QueueKeys
from ..queue import Queue
from .deadletter import dlq_name
from .suppressions import _record, address_digest, hashed_field, normalize

_LOCAL = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-"


def address_pattern(address: str) -> re.Pattern[str]:
    """A case-insensitive regex matching ``address`` as a whole address."""
    return re.compile(rf"(?<![{_LOCAL}]){re.escape(address)}(?![A-Za-z0-9\-]|\.[A-Za-z0-9])",
                      re.IGNORECASE)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _dead_letter_queues(queue: Queue) -> list[str]:
    names = [dlq_name(queue.name)]
    getter = getattr(queue, "get_dead_letter_queue", None)
    if callable(getter):
        other = getter()
        if isinstance(other, str) and other and other not in names:
            names.append(other)
    return names


_Client = redis.Redis | redis.cluster.RedisCluster


def _scanner(client: _Client, keys: QueueKeys) -> redis.Redis:
    """Where the queue's keys can be scanned: the server itself, or on a
    cluster the primary that owns the queue's slot (its keys share a hash tag)."""
    if isinstance(client, redis.Redis):
        return client
    find: Any = client.get_node_from_key  # untyped upstream
    return client.get_redis_connection(find(keys.base))


def _job_ids(client: _Client, keys: QueueKeys, matches: re.Pattern[str]) -> list[str]:
    """Ids of the queue's jobs whose hash or logs mention the address (three
    pipelined round trips per thousand keys scanned)."""
    found = []
    base = keys.base
    scanner = _scanner(client, keys)
    cursor = 0
    while True:
        cursor, batch = scanner.scan(cursor, match=base + "*", count=1000)
        names = [_text(k) for k in batch if not _text(k).endswith(":logs")]
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.type(name)
        hashes = [n for n, kind in zip(names, pipe.execute(), strict=True)
                  if _text(kind) == "hash"]
        pipe = client.pipeline(transaction=False)
        for name in hashes:
            pipe.hgetall(name)
            pipe.lrange(keys.logs(name[len(base):]), 0, -1)
        replies = pipe.execute()
        for i, name in enumerate(hashes):
            fields, logs = replies[2 * i], replies[2 * i + 1]
            if b"data" not in fields and "data" not in fields:
                continue  # meta, schedulers, groups: not a job
            texts = [name, *(_text(v) for v in fields.values()), *(_text(x) for x in logs)]
            if any(matches.search(t) for t in texts):
                found.append(name[len(base):])
        if int(cursor) == 0:
            return found


def _remove_jobs(queue: Queue, ids: list[str], wait: float) -> tuple[Counter[str], list[str]]:
    counts: Counter[str] = Counter()
    pending = list(ids)
    deadline = time.monotonic() + wait
    while pending:
        left = []
        for job_id in pending:
            raw = queue.get_job_state(job_id)
            state = str(getattr(raw, "value", raw))  # a JobState (a str Enum)
            if state == "unknown":
                continue
            if queue.remove(job_id):
                counts[state] += 1
            else:
                left.append(job_id)
        pending = left
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.2)  # an active job's worker is finishing it; look again
    return counts, pending


def _purge_events(client: _Client, keys: QueueKeys, ids: set[str],
                  matches: re.Pattern[str]) -> int:
    removed = 0
    start = "-"
    while True:
        entries = client.xrange(keys.events, min=start, max="+", count=1000)
        if not entries:
            return removed
        doomed: list[Any] = []
        for entry_id, fields in entries:
            values = {_text(k): _text(v) for k, v in (fields or {}).items()}
            if values.get("jobId") in ids or any(matches.search(v) for v in values.values()):
                doomed.append(entry_id)
        if doomed:
            removed += int(client.xdel(keys.events, *doomed))
        if len(entries) < 1000:
            return removed
        start = "(" + _text(entries[-1][0])


def forget(queue: Queue, address: str, *, wait: float = 10.0) -> dict[str, int]:
    """Erase ``address`` from ``queue`` (see the module docstring); returns counts:
    removed jobs per state, ``dead_letters``, ``events``, ``counters``,
    ``suppressed`` (1: the hashed entry is in place) and ``busy`` (jobs still
    active after ``wait`` seconds, not removed); ``counters`` are the soft-bounce
    counter and limit windows deleted. Raises ``ValueError`` for an
    invalid address before anything is written."""
    addr = normalize(address)
    matches = address_pattern(addr)
    client = queue.client
    keys = QueueKeys(queue.prefix, queue.name)
    counts: Counter[str] = Counter()
    busy: list[str] = []

    ids = _job_ids(client, keys, matches)
    removed, left = _remove_jobs(queue, ids, wait)
    counts.update(removed)
    busy += left
    counts["events"] += _purge_events(client, keys, set(ids) - set(left), matches)
    for name in _dead_letter_queues(queue):
        with Queue(name, connection=client, prefix=queue.prefix) as dead:
            dead_keys = QueueKeys(queue.prefix, name)
            dead_ids = _job_ids(client, dead_keys, matches)
            removed, left = _remove_jobs(dead, dead_ids, wait)
            counts["dead_letters"] += sum(removed.values())
            busy += left
            counts["events"] += _purge_events(client, dead_keys, set(dead_ids) - set(left),
                                              matches)

    digest = address_digest(addr)
    doomed = [keys.soft_bounces(digest)]
    doomed += [_text(k) for k in _scanner(client, keys).scan_iter(
        match=keys.send_window("*", digest), count=1000)]
    counts["counters"] = int(client.delete(*doomed))
    previous = client.hget(keys.suppressed, addr)
    reason = "forgotten"
    if previous is not None:
        reason = "forgotten (was suppressed)"
    pipe = client.pipeline(transaction=True)
    pipe.hdel(keys.suppressed, addr)
    pipe.hset(keys.suppressed, hashed_field(addr), _record(reason, "forget", time.time(), None))
    pipe.execute()
    counts["suppressed"] = 1
    counts["busy"] = len(busy)
    return dict(counts)
