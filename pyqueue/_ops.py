"""Every queue and job operation, written once as a plan (see ``_plan``).

``Queue``, ``AsyncQueue``, ``Job`` and ``Worker`` call these and run the
plans with their own client. Nothing here does I/O itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from . import _scripts as S
from ._keys import QueueKeys
from ._plan import Command, Plan, cmd
from .errors import InvalidJobOptionsError, RedisError
from .options import EncodedJob

#: Public state names and where each lives.
ALL_STATES = ("active", "completed", "delayed", "failed", "paused", "prioritized",
              "waiting", "waiting-children")
#: What ``get_job_counts()`` reports when no state is named (as BullMQ does).
DEFAULT_COUNT_STATES = ("active", "completed", "delayed", "failed", "prioritized", "waiting",
                        "waiting-children")
_LIST_STATES = {"waiting": "wait", "active": "active", "paused": "paused"}
_ZSET_STATES = {"prioritized": "prioritized", "delayed": "delayed", "completed": "completed",
                "failed": "failed", "waiting-children": "waiting-children"}
_STATE_ALIASES = {"wait": "waiting"}
BATCH = 1000
VERSION = "0.1.0"
CLOCK_RESYNC_SECONDS = 300.0


class Clock:
    """Milliseconds on the Redis server's clock, from a measured offset.

    Scripts take "now" as an argument; using the server's clock means a
    worker whose own clock is skewed cannot start delayed jobs early or
    declare live jobs stalled. ``fixed_ms`` pins the clock (for tests).
    """

    def __init__(self, fixed_ms: int | None = None, meta_key: str | None = None) -> None:
        self.meta_key = meta_key
        #: The events stream cap read from meta at each sync, passed to the
        #: scripts that write events (saves them a lookup per call).
        self.max_events: int | None = None
        self.offset_ms = 0.0
        self.synced_at: float | None = None
        self.fixed_ms = fixed_ms

    def now_ms(self) -> int:
        """The current time on the server, in ms."""
        if self.fixed_ms is not None:
            return self.fixed_ms
        return int(time.time() * 1000 + self.offset_ms)

    def fresh(self) -> bool:
        """True when the offset was measured recently (``sync`` would do nothing)."""
        return self.synced_at is not None and \
            time.monotonic() - self.synced_at < CLOCK_RESYNC_SECONDS

    def sync(self) -> Plan[None]:
        """Measure the offset to the server clock if it is stale (one TIME call).

        The first sync also registers the queue in ``meta`` as BullMQ does when
        a Queue or Worker is created (``opts.maxLenEvents``, ``version``).
        """
        if self.fresh():
            return
        batch = [cmd("TIME")]
        if self.synced_at is None and self.meta_key is not None:
            batch.append(cmd("HSETNX", self.meta_key, "opts.maxLenEvents", 10000))
            batch.append(cmd("HSET", self.meta_key, "version", f"pyqueue:{VERSION}"))
        if self.meta_key is not None:
            batch.append(cmd("HGET", self.meta_key, "opts.maxLenEvents"))
        before = time.time()
        replies = yield batch
        after = time.time()
        if self.meta_key is not None and replies[-1] is not None:
            try:
                self.max_events = int(replies[-1])
            except ValueError:
                self.max_events = None
        if self.fixed_ms is not None:
            self.synced_at = time.monotonic()
            return
        reply = replies[0]
        server_ms = int(reply[0]) * 1000 + int(reply[1]) / 1000
        self.offset_ms = server_ms - (before + after) / 2 * 1000
        self.synced_at = time.monotonic()


def normalize_state(state: str) -> str:
    """A user's state name in BullMQ's words (``wait`` is ``waiting``)."""
    if not isinstance(state, str):
        raise InvalidJobOptionsError(f"state must be a str, got {state!r}")
    state = _STATE_ALIASES.get(state, state)
    if state not in ALL_STATES:
        raise InvalidJobOptionsError(f"unknown state {state!r}; known: {list(ALL_STATES)}")
    return state


# --- adding -------------------------------------------------------------------

def _job_params(job: EncodedJob) -> dict[str, Any]:
    options = job.options
    params = {"id": options.job_id, "name": job.name, "data": job.data, "opts": options.opts,
              "delay": options.delay_ms, "priority": options.priority}
    if options.lifo:
        params["lifo"] = True
    if options.dedup_id is not None:
        params["deid"] = options.dedup_id
        params["dettl"] = options.dedup_ttl_ms
        if options.dedup_mode is not None:
            params["dmode"] = options.dedup_mode
    if options.group is not None:
        params["gid"] = options.group
    return params


def add_command(keys: QueueKeys, clock: Clock, now: int, job: EncodedJob) -> Command:
    """The addJob call for one job (the clock must be fresh: see ``Clock.sync``).
    Its reply is ``[job_id, status]`` (see lua/addJob.lua)."""
    return S.call("addJob", keys, now, me=clock.max_events, **_job_params(job))


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
        yield from clock.sync()
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
            call = S.call("addJob", keys, now, me=clock.max_events,
                          jobs=[_job_params(job) for job in jobs[i:i + ADD_CHUNK]])
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


# --- reading ------------------------------------------------------------------

def get_job_hash(keys: QueueKeys, job_id: str) -> Plan[dict[str, str] | None]:
    """The job's stored fields, or ``None``."""
    (raw,) = yield [cmd("HGETALL", keys.job(job_id))]
    fields = S.pairs_to_dict(raw)
    return fields or None


def get_state(keys: QueueKeys, clock: Clock, job_id: str) -> Plan[str]:
    """The job's state in BullMQ's words."""
    (reply,) = yield [S.call("getState", keys, clock.now_ms(), id=job_id)]
    return S.text(reply)


def get_counts(keys: QueueKeys, states: Iterable[str]) -> Plan[dict[str, int]]:
    """Job counts per state, one round trip."""
    wanted = [normalize_state(s) for s in states] or list(DEFAULT_COUNT_STATES)
    commands = []
    for state in wanted:
        if state in _LIST_STATES:
            commands.append(cmd("LLEN", keys.key(_LIST_STATES[state])))
        else:
            commands.append(cmd("ZCARD", keys.key(_ZSET_STATES[state])))
    commands.append(S.call("groupCounts", keys, 0, perGroup=False))
    replies = yield commands
    counts = {state: int(n) for state, n in zip(wanted, replies[:-1], strict=True)}
    grouped = replies[-1]
    if "waiting" in counts:
        counts["waiting"] += int(grouped[0])
    if "delayed" in counts:
        counts["delayed"] += int(grouped[1])
    return counts


def get_group_counts(keys: QueueKeys) -> Plan[dict[str, dict[str, int]]]:
    """Per group: ready (``waiting``) and ``active`` jobs."""
    (reply,) = yield [S.call("groupCounts", keys, 0, perGroup=True)]
    rows = reply[2]
    return {S.text(rows[i]): {"waiting": int(rows[i + 1]), "active": int(rows[i + 2])}
            for i in range(0, len(rows), 3)}


def get_jobs(keys: QueueKeys, states: Iterable[str], start: int, end: int,
             asc: bool) -> Plan[list[tuple[str, dict[str, str]]]]:
    """Jobs of the given states, newest first (or oldest first with ``asc``)."""
    wanted = [normalize_state(s) for s in states]
    grouped: dict[str, list[str]] = {}
    if "waiting" in wanted or "delayed" in wanted:
        grouped = yield from _grouped_ids(keys)
    if any(grouped.values()):
        # Grouped jobs exist: list whole states, then take the window.
        return (yield from _get_jobs_with_groups(keys, wanted, grouped, start, end, asc))
    commands = []
    for state in wanted:
        if state in _LIST_STATES:
            key = keys.key(_LIST_STATES[state])
            # Lists hold the newest at the head (LPUSH).
            if asc:
                commands.append(cmd("LRANGE", key, -(end + 1) if end >= 0 else 0,
                                    -(start + 1)))
            else:
                commands.append(cmd("LRANGE", key, start, end))
        else:
            key = keys.key(_ZSET_STATES[state])
            commands.append(cmd("ZRANGE" if asc else "ZREVRANGE", key, start, end))
    replies = yield commands
    ids: list[str] = []
    for state, reply in zip(wanted, replies, strict=True):
        chunk = [S.text(i) for i in reply]
        if state in _LIST_STATES and asc:
            chunk.reverse()
        ids.extend(chunk)
    if not ids:
        return []
    hashes = yield [cmd("HGETALL", keys.job(job_id)) for job_id in ids]
    out = []
    for job_id, raw in zip(ids, hashes, strict=True):
        fields = S.pairs_to_dict(raw)
        if fields:
            out.append((job_id, fields))
    return out


def _grouped_ids(keys: QueueKeys) -> Plan[dict[str, list[str]]]:
    """Ids of grouped jobs: ready ones (``waiting``) and ``delayed`` ones."""
    groups, delayed = yield [cmd("SMEMBERS", keys.key("gr:all")),
                             cmd("ZRANGE", keys.key("gr:delayed"), 0, -1)]
    waiting: list[str] = []
    if groups:
        replies = yield [cmd("ZRANGE", keys.key(f"g:{S.text(g)}:wait"), 0, -1) for g in groups]
        for reply in replies:
            waiting.extend(S.text(i) for i in reply)
    return {"waiting": waiting, "delayed": [S.text(i) for i in delayed]}


def _get_jobs_with_groups(keys: QueueKeys, wanted: list[str], grouped: dict[str, list[str]],
                          start: int, end: int,
                          asc: bool) -> Plan[list[tuple[str, dict[str, str]]]]:
    commands = []
    for state in wanted:
        if state in _LIST_STATES:
            commands.append(cmd("LRANGE", keys.key(_LIST_STATES[state]), 0, -1))
        else:
            commands.append(cmd("ZRANGE", keys.key(_ZSET_STATES[state]), 0, -1))
    replies = yield commands
    ids: list[str] = []
    for state, reply in zip(wanted, replies, strict=True):
        chunk = [S.text(i) for i in reply]
        if state in _LIST_STATES:
            chunk.reverse()  # lists hold the newest at the head: make it oldest first
        chunk.extend(grouped.get(state, []))
        ids.extend(chunk if asc else list(reversed(chunk)))
    window = ids[start:] if end == -1 else ids[start:end + 1]
    if not window:
        return []
    hashes = yield [cmd("HGETALL", keys.job(job_id)) for job_id in window]
    return [(job_id, S.pairs_to_dict(raw)) for job_id, raw in zip(window, hashes, strict=True)
            if raw]


def get_logs(keys: QueueKeys, job_id: str, start: int = 0, end: int = -1) -> Plan[list[str]]:
    """A job's log lines."""
    (reply,) = yield [cmd("LRANGE", keys.logs(job_id), start, end)]
    return [S.text(line) for line in reply]


def is_paused(keys: QueueKeys) -> Plan[bool]:
    """Whether the queue is globally paused."""
    (reply,) = yield [cmd("HEXISTS", keys.meta, "paused")]
    return bool(reply)


# --- queue management ----------------------------------------------------------

def simple(name: str, keys: QueueKeys, clock: Clock, /, *, op: str,
           job_id: str | None = None, **params: Any) -> Plan[Any]:
    """Run one script once and check its reply."""
    yield from clock.sync()
    (reply,) = yield [S.call(name, keys, clock.now_ms(), **params)]
    return S.check(reply, op=op, job_id=job_id)


def repeat_until_done(name: str, keys: QueueKeys, clock: Clock, *, op: str,
                      **params: Any) -> Plan[int]:
    """Call a batched script until it reports nothing left; returns the calls made."""
    yield from clock.sync()
    calls = 0
    while True:
        (reply,) = yield [S.call(name, keys, clock.now_ms(), **params)]
        calls += 1
        if S.check(reply, op=op) == 0:
            return calls


def promote_all(keys: QueueKeys, clock: Clock) -> Plan[int]:
    """Promote every delayed job; returns how many."""
    yield from clock.sync()
    total = 0
    while True:
        (reply,) = yield [S.call("promote", keys, clock.now_ms(), batch=BATCH)]
        moved = int(S.check(reply, op="promote_jobs"))
        total += moved
        if moved < BATCH:
            return total


def retry_all(keys: QueueKeys, clock: Clock, state: str, count: int) -> Plan[int]:
    """Move up to ``count`` finished jobs of ``state`` back to be processed."""
    yield from clock.sync()
    total = 0
    while total < count:
        step = min(BATCH, count - total)
        (reply,) = yield [S.call("reprocessJobs", keys, clock.now_ms(), state=state,
                                 count=step)]
        moved = int(S.check(reply, op="retry_jobs"))
        total += moved
        if moved < step:
            break
    return total


def clean(keys: QueueKeys, clock: Clock, grace_ms: int, limit: int,
          state: str) -> Plan[list[str]]:
    """Remove jobs of ``state`` older than ``grace_ms``; returns their ids."""
    yield from clock.sync()
    cutoff = clock.now_ms() - grace_ms
    removed: list[str] = []
    while True:
        want = limit - len(removed) if limit > 0 else BATCH
        (reply,) = yield [S.call("clean", keys, clock.now_ms(), state=state, cutoff=cutoff,
                                 limit=min(want, BATCH))]
        ids = [S.text(i) for i in reply]
        removed.extend(ids)
        if len(ids) < min(want, BATCH) or (limit > 0 and len(removed) >= limit):
            return removed


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """Stream entries from an XRANGE/XREVRANGE/XREAD reply as (id, fields)."""
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3 XREAD: {stream: [[id, fields], ...]}
        reply = next(iter(reply.values()))
    elif isinstance(reply[0], list | tuple) and len(reply[0]) == 2 \
            and isinstance(reply[0][1], list) and reply[0][1] \
            and isinstance(reply[0][1][0], list | tuple):  # XREAD: [[stream, entries]]
        reply = reply[0][1]
    return [(S.text(entry[0]), S.pairs_to_dict(entry[1])) for entry in reply]


def _terminal(entries: list[tuple[str, dict[str, str]]],
              job_id: str) -> tuple[str, dict[str, str]] | None:
    """The job's completed/failed event among ``entries``, as (state, fields)."""
    for _, event in entries:
        if event.get("jobId") != job_id:
            continue
        if event.get("event") == "completed":
            return "completed", {"returnvalue": event.get("returnvalue", "null")}
        if event.get("event") == "failed":
            return "failed", {"failedReason": event.get("failedReason", "")}
    return None


def wait_finished(keys: QueueKeys, job_id: str,
                  timeout: float | None) -> Plan[tuple[str, dict[str, str]]]:
    """Wait until the job is completed or failed; returns (state, fields).

    Follows the events stream (XREAD BLOCK, at most 1 s at a time) and checks
    the job's state each time, so a missed or trimmed event only costs a
    second. A job removed on completion (``remove_on_complete=True``) is
    answered from its ``completed``/``failed`` event. Raises ``TimeoutError``
    after ``timeout`` seconds; returns ``("unknown", {})`` for a job that does
    not exist and left no trace in the recent events.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last_id = ""
    known: dict[str, str] = {}
    while True:
        # The stream head is read first: any event after it is caught by XREAD.
        head, score_c, score_f, raw = yield [
            cmd("XREVRANGE", keys.events, "+", "-", "COUNT", 1 if last_id else 1000),
            cmd("ZSCORE", keys.completed, job_id),
            cmd("ZSCORE", keys.failed, job_id),
            cmd("HGETALL", keys.job(job_id)),
        ]
        fields = S.pairs_to_dict(raw)
        if score_c is not None:
            return "completed", fields
        if score_f is not None:
            return "failed", fields
        recent = _entries(head)
        if not last_id:
            last_id = recent[0][0] if recent else "0-0"
            if not fields:  # gone already: finished and removed before we looked?
                done = _terminal(recent, job_id)
                return done if done is not None else ("unknown", {})
        if fields:
            known = fields
        block_ms = 1000
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"job {job_id!r} did not finish within {timeout} s")
            block_ms = max(1, min(block_ms, int(left * 1000)))
        (reply,) = yield [cmd("XREAD", "COUNT", 1000, "BLOCK", block_ms, "STREAMS",
                              keys.events, last_id)]
        entries = _entries(reply)
        if entries:
            last_id = entries[-1][0]
            done = _terminal(entries, job_id)
            if done is not None:
                (raw,) = yield [cmd("HGETALL", keys.job(job_id))]
                fresh = S.pairs_to_dict(raw)  # the job as finished, unless removed
                return done[0], fresh or {**known, **done[1]}
        if not fields and not entries:
            return "unknown", {}


def decode_json(value: str | None, default: Any = None) -> Any:
    """JSON text from Redis, tolerating absent or corrupt values."""
    if value is None or value == "":
        return default
    try:
        return json.loads(value)
    except ValueError:
        return value
