"""Dead letters: the plans behind ``Queue.set_dead_letter_queue``,
``get_dead_letters``, ``replay_dead_letters`` and ``purge_dead_letters``.

A queue's dead-letter queue (DLQ) is a plain queue under the same prefix,
named in the queue's meta hash, so every worker of the queue honours it. The
copy into it happens in the script that fails a job (lua/includes/
deadletter.lua); this module configures it and reads, replays and purges its
entries (jobs in the DLQ's ``wait`` list, oldest first). A replay moves each
entry back atomically (lua/replayDeadLetters.lua); a purge deletes entries
(lua/purgeDeadLetters.lua).

The operations accept either the origin queue (one that has a DLQ: only its
own entries are concerned) or a DLQ itself (every entry, whatever its
origin); any other queue raises :class:`~pyqueue.errors.DeadLetterQueueError`
before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from redis.crc import key_slot

from . import _scripts as S
from ._clock import Clock
from ._keys import (
    META_DEAD_LETTER_QUEUE,
    META_IS_DEAD_LETTER_QUEUE,
    QueueKeys,
    validate_queue_name,
)
from ._plan import Plan, cmd
from .errors import ConfigurationError, DeadLetterQueueError, InvalidQueueNameError

#: Entries read per round trip, and replayed per script call.
READ_CHUNK = 1000
REPLAY_CHUNK = 200

#: Options of the failed job that a replay does not carry over: the replayed
#: job has a new id, starts now (or as ``rate`` spreads it), and belongs to no
#: deduplication id, scheduler or flow.
DROPPED_OPTIONS = frozenset({"jobId", "delay", "timestamp", "de", "repeat", "prevMillis",
                             "repeatJobKey", "parent", "fpof", "cpof", "idof", "rdof"})


@dataclass(frozen=True)
class Filters:
    """Which entries an operation concerns (all given conditions must hold)."""

    name: str | None = None
    since_ms: int | None = None
    failed_reason: str | None = None
    limit: int | None = None
    #: the failed job's id in its queue
    job_id: str | None = None

    def match(self, name: str, data: dict[str, Any]) -> bool:
        """Whether the entry (its job name and data) passes the filters."""
        if self.name is not None and name != self.name:
            return False
        if self.job_id is not None and data.get("job_id") != self.job_id:
            return False
        if self.since_ms is not None:
            failed_at = data.get("failed_at")
            if not isinstance(failed_at, int | float) or failed_at < self.since_ms:
                return False
        return self.failed_reason is None or self.failed_reason in str(
            data.get("failed_reason") or "")


def filters(*, name: Any = None, since: Any = None, failed_reason: Any = None,
            limit: Any = None, job_id: Any = None) -> Filters:
    """Validated :class:`Filters`: ``name`` (exact job name), ``since`` (failed at
    or after: a ``datetime``, epoch seconds, or a ``timedelta`` meaning that long
    ago), ``failed_reason`` (a substring of the failure reason), ``limit``."""
    if name is not None and not isinstance(name, str):
        raise ConfigurationError(f"name must be a str, got {name!r}")
    if job_id is not None and not isinstance(job_id, str):
        raise ConfigurationError(f"job_id must be a str, got {job_id!r}")
    if failed_reason is not None and not isinstance(failed_reason, str):
        raise ConfigurationError(f"failed_reason must be a str, got {failed_reason!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 0):
        raise ConfigurationError(f"limit must be an int >= 0, got {limit!r}")
    return Filters(name, _since_ms(since), failed_reason, limit, job_id)


def _since_ms(since: Any) -> int | None:
    if since is None:
        return None
    if isinstance(since, datetime):
        moment = since if since.tzinfo is not None else since.replace(tzinfo=timezone.utc)
        return int(moment.timestamp() * 1000)
    if isinstance(since, timedelta):
        return int((datetime.now(timezone.utc) - since).timestamp() * 1000)
    if isinstance(since, int | float) and not isinstance(since, bool) and since >= 0:
        return int(since * 1000)
    raise ConfigurationError(
        f"since must be a datetime, a timedelta (that long ago) or epoch seconds, got {since!r}")


def check_target(keys: QueueKeys, dlq: Any) -> str | None:
    """The dead-letter queue's name for ``keys`` (``None``: turn it off), or
    :class:`DeadLetterQueueError` / :class:`InvalidQueueNameError` (read only)."""
    if dlq is None:
        return None
    prefix = getattr(dlq, "prefix", keys.prefix)
    name = getattr(dlq, "name", dlq)
    if prefix != keys.prefix:
        raise DeadLetterQueueError(
            f"dead-letter queue {name!r} is under prefix {prefix!r}, queue {keys.name!r} "
            f"under {keys.prefix!r}: a dead-letter queue must share the queue's prefix")
    if isinstance(name, str) and ":" in name:
        raise DeadLetterQueueError(
            f"dead-letter queue name {name!r} contains ':' (a queue under another prefix?); "
            f"give the name of a queue under {keys.prefix!r}")
    try:
        name = validate_queue_name(name)
    except InvalidQueueNameError as exc:
        raise DeadLetterQueueError(f"dead-letter queue: {exc}") from None
    if name == keys.name:
        raise DeadLetterQueueError(
            f"queue {keys.name!r} cannot be its own dead-letter queue")
    target = keys.sibling(name)
    if ("{" in keys.meta or "{" in target.meta) and key_slot(keys.meta.encode()) != key_slot(
            target.meta.encode()):
        raise DeadLetterQueueError(
            f"dead-letter queue {name!r} hashes to another Redis Cluster slot than queue "
            f"{keys.name!r}: give both the same hash tag (e.g. '{{{keys.name}}}-dead' with "
            f"a tagged queue name, or a tagged prefix)")
    return name


def set_plan(keys: QueueKeys, dlq: str | None) -> Plan[None]:
    """Store (or clear, ``None``) the queue's dead-letter queue; marks the DLQ."""
    if dlq is None:
        yield [cmd("HDEL", keys.meta, META_DEAD_LETTER_QUEUE)]
        return
    yield [cmd("HSET", keys.sibling(dlq).meta, META_IS_DEAD_LETTER_QUEUE, "1"),
           cmd("HSET", keys.meta, META_DEAD_LETTER_QUEUE, dlq)]


def get_plan(keys: QueueKeys) -> Plan[str | None]:
    """The queue's dead-letter queue name, or ``None``."""
    (value,) = yield [cmd("HGET", keys.meta, META_DEAD_LETTER_QUEUE)]
    return None if value is None else S.text(value)


@dataclass
class Entry:
    """A dead-letter entry as read: its DLQ job id, name, timestamp and data."""

    id: str
    name: str
    ts: str
    data: dict[str, Any]


def source_plan(keys: QueueKeys) -> Plan[tuple[QueueKeys, str | None]]:
    """(the DLQ's keys, the origin its entries must come from or ``None`` for
    any): the queue's DLQ when it has one, else the queue itself if it is one."""
    (dlq, is_dlq) = (yield [cmd("HMGET", keys.meta, META_DEAD_LETTER_QUEUE,
                                META_IS_DEAD_LETTER_QUEUE)])[0]
    if dlq is not None:
        return keys.sibling(S.text(dlq)), keys.name
    if is_dlq is not None:
        return keys, None
    raise DeadLetterQueueError(
        f"queue {keys.name!r} has no dead-letter queue and is none: call "
        f"set_dead_letter_queue(...) on it, or name the dead-letter queue itself")


def select_plan(keys: QueueKeys, wanted: Filters) -> Plan[tuple[QueueKeys, list[Entry]]]:
    """The DLQ's keys and the entries that pass ``wanted``, oldest first."""
    dkeys, origin = yield from source_plan(keys)
    if wanted.limit == 0:
        return dkeys, []
    (ids,) = yield [cmd("LRANGE", dkeys.wait, 0, -1)]
    ids = [S.text(i) for i in reversed(ids)]
    found: list[Entry] = []
    for start in range(0, len(ids), READ_CHUNK):
        chunk = ids[start:start + READ_CHUNK]
        replies = yield [cmd("HMGET", dkeys.job(i), "name", "data", "timestamp") for i in chunk]
        for job_id, (name, data, ts) in zip(chunk, replies, strict=True):
            entry = _entry(job_id, name, data, ts)
            if entry is None or (origin is not None and entry.data.get("queue") != origin):
                continue
            if wanted.match(entry.name, entry.data):
                found.append(entry)
                if wanted.limit is not None and len(found) >= wanted.limit:
                    return dkeys, found
    return dkeys, found


def _entry(job_id: str, name: Any, data: Any, ts: Any) -> Entry | None:
    if data is None or ts is None:
        return None
    try:
        parsed = json.loads(S.text(data))
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("queue"), str):
        return None
    return Entry(job_id, S.text(name or ""), S.text(ts), parsed)


def fields_plan(dkeys: QueueKeys, entries: list[Entry]) -> Plan[list[tuple[str, dict[str, str]]]]:
    """The full hashes of ``entries`` (for ``Job`` objects); gone ones left out."""
    out: list[tuple[str, dict[str, str]]] = []
    for start in range(0, len(entries), READ_CHUNK):
        chunk = entries[start:start + READ_CHUNK]
        replies = yield [cmd("HGETALL", dkeys.job(e.id)) for e in chunk]
        for entry, flat in zip(chunk, replies, strict=True):
            fields = S.pairs_to_dict(flat)
            if fields:
                out.append((entry.id, fields))
    return out


def replay_entry(entry: Entry, delay_ms: int, new_id: str | None = None) -> S.ReplayEntry:
    """What replayDeadLetters adds back for ``entry``: its original name, data and
    options (less :data:`DROPPED_OPTIONS`), attempts made reset to 0."""
    raw_opts = entry.data.get("opts")
    opts = {k: v for k, v in raw_opts.items() if k not in DROPPED_OPTIONS} \
        if isinstance(raw_opts, dict) else {}
    opts.setdefault("attempts", 0)
    if delay_ms > 0:
        opts["delay"] = delay_ms
    priority = opts.get("priority")
    group = entry.data.get("group")
    return {"id": entry.id, "ts": entry.ts, "name": entry.name,
            "data": json.dumps(entry.data.get("data"), separators=(",", ":"),
                               ensure_ascii=False),
            "opts": json.dumps(opts, separators=(",", ":"), ensure_ascii=False),
            "priority": priority if isinstance(priority, int) and priority > 0 else 0,
            "lifo": opts.get("lifo") is True or None,
            "gid": group if isinstance(group, str) else None,
            "delay": delay_ms, "newId": new_id}


def check_rate(rate: Any) -> float | None:
    """``rate`` (replayed jobs per second) validated."""
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        raise ConfigurationError(f"rate must be a number of jobs per second > 0, got {rate!r}")
    return float(rate)


def replay_plan(keys: QueueKeys, clock: Clock, wanted: Filters, rate: float | None,
                new_id: Callable[[Entry], str | None] | None = None) -> Plan[list[str]]:
    """Replay the entries that pass ``wanted``; returns the new job ids. With
    ``rate``, entry i becomes due i / rate seconds after the replay started
    (delayed), so workers are not flooded. ``new_id(entry)`` may choose a new
    job's id (the origin's id counter gives one when it does not, or when that
    id is taken)."""
    dkeys, entries = yield from select_plan(keys, wanted)
    yield from clock.sync()
    start = clock.now_ms()
    new_ids: list[str] = []
    batch: list[tuple[Entry, int]] = []
    for i, entry in enumerate(entries):
        if batch and (entry.data["queue"] != batch[0][0].data["queue"]
                      or len(batch) >= REPLAY_CHUNK):
            new_ids += yield from _replay_batch(keys, clock, dkeys.name, batch, new_id)
            batch = []
        batch.append((entry, start + int(i * 1000 / rate) if rate else 0))
    if batch:
        new_ids += yield from _replay_batch(keys, clock, dkeys.name, batch, new_id)
    return new_ids


def _replay_batch(keys: QueueKeys, clock: Clock, dlq: str, batch: list[tuple[Entry, int]],
                  new_id: Callable[[Entry], str | None] | None) -> Plan[list[str]]:
    """Replay one batch of entries of one origin queue; ``due`` 0 is "now"."""
    try:
        target = keys.sibling(validate_queue_name(batch[0][0].data["queue"]))
    except InvalidQueueNameError:
        return []  # not an entry pyqueue wrote: left where it is
    now = clock.now_ms()
    entries = [replay_entry(entry, max(due - now, 0) if due else 0,
                            new_id(entry) if new_id else None) for entry, due in batch]
    (reply,) = yield [S.replay_dead_letters(target, now, dlq=dlq, entries=entries)]
    S.check(reply, op="replay_dead_letters")
    return [S.text(i) for i in reply if S.text(i)]


def purge_plan(keys: QueueKeys, clock: Clock, wanted: Filters) -> Plan[int]:
    """Remove the entries that pass ``wanted`` without replaying; returns how many."""
    dkeys, entries = yield from select_plan(keys, wanted)
    yield from clock.sync()
    removed = 0
    for start in range(0, len(entries), READ_CHUNK):
        chunk = entries[start:start + READ_CHUNK]
        (reply,) = yield [S.purge_dead_letters(dkeys, clock.now_ms(),
                                               entries=[(e.id, e.ts) for e in chunk])]
        removed += int(reply)
    return removed
