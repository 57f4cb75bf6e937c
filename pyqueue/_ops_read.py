"""Reading a queue: job hashes, states, counts, job lists, logs and the paused flag."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from . import _scripts as S
from ._clock import Clock
from ._keys import QUEUE_MARKERS, QueueKeys
from ._plan import Plan, cmd
from .errors import InvalidJobOptionsError

#: Public state names.
ALL_STATES = ("active", "completed", "delayed", "failed", "paused", "prioritized",
              "waiting", "waiting-children")
#: What ``get_job_counts()`` reports when no state is named (as BullMQ does).
DEFAULT_COUNT_STATES = ("active", "completed", "delayed", "failed", "prioritized", "waiting",
                        "waiting-children")
#: The states kept in lists (the others are zsets).
LIST_STATES = frozenset({"waiting", "active", "paused"})
_STATE_ALIASES = {"wait": "waiting"}


def normalize_state(state: str) -> str:
    """A user's state name in BullMQ's words (``wait`` is ``waiting``)."""
    if not isinstance(state, str):
        raise InvalidJobOptionsError(f"state must be a str, got {state!r}")
    state = _STATE_ALIASES.get(state, state)
    if state not in ALL_STATES:
        raise InvalidJobOptionsError(f"unknown state {state!r}; known: {list(ALL_STATES)}")
    return state


METRIC_KINDS = ("completed", "failed")


def get_metrics(keys: QueueKeys, kind: str, start: int, end: int) -> Plan[dict[str, Any]]:
    """BullMQ's metrics of ``kind`` (``completed``/``failed``), in getMetrics' shape:
    ``{"meta": {"count", "prev_ts", "prev_count"}, "data": [per minute, newest
    first], "count": data points stored}``."""
    if kind not in METRIC_KINDS:
        raise InvalidJobOptionsError(f"metrics kind must be 'completed' or 'failed', "
                                     f"got {kind!r}")
    for value, option in ((start, "start"), (end, "end")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidJobOptionsError(f"{option} must be an int, got {value!r}")
    data = keys.metrics_data(kind)
    meta, points, stored = yield [cmd("HMGET", keys.metrics(kind), "count", "prevTS",
                                      "prevCount"),
                                  cmd("LRANGE", data, start, end), cmd("LLEN", data)]
    count, prev_ts, prev_count = (int(S.text(v)) if v is not None else 0 for v in meta)
    return {"meta": {"count": count, "prev_ts": prev_ts, "prev_count": prev_count},
            "data": [int(S.text(p)) for p in points], "count": int(stored)}


def get_job_hash(keys: QueueKeys, job_id: str) -> Plan[dict[str, str] | None]:
    """The job's stored fields, or ``None``."""
    (raw,) = yield [cmd("HGETALL", keys.job(job_id))]
    fields = S.pairs_to_dict(raw)
    return fields or None


def get_state(keys: QueueKeys, clock: Clock, job_id: str) -> Plan[str]:
    """The job's state in BullMQ's words."""
    (reply,) = yield [S.get_state(keys, clock.now_ms(), id=job_id)]
    return S.text(reply)


def get_counts(keys: QueueKeys, states: Iterable[str]) -> Plan[dict[str, int]]:
    """Job counts per state, one round trip."""
    wanted = [normalize_state(s) for s in states] or list(DEFAULT_COUNT_STATES)
    commands = []
    for state in wanted:
        if state in LIST_STATES:
            commands.append(cmd("LLEN", keys.state_key(state)))
        else:
            commands.append(cmd("ZCARD", keys.state_key(state)))
    commands.append(S.group_counts(keys, 0, per_group=False))
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
    (reply,) = yield [S.group_counts(keys, 0, per_group=True)]
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
        if state in LIST_STATES:
            key = keys.state_key(state)
            # Lists hold the newest at the head (LPUSH).
            if asc:
                commands.append(cmd("LRANGE", key, -(end + 1) if end >= 0 else 0,
                                    -(start + 1)))
            else:
                commands.append(cmd("LRANGE", key, start, end))
        else:
            key = keys.state_key(state)
            commands.append(cmd("ZRANGE" if asc else "ZREVRANGE", key, start, end))
    replies = yield commands
    ids: list[str] = []
    for state, reply in zip(wanted, replies, strict=True):
        chunk = [S.text(i) for i in reply]
        if state in LIST_STATES and asc:
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
    groups, delayed = yield [cmd("SMEMBERS", keys.groups_all),
                             cmd("ZRANGE", keys.groups_delayed, 0, -1)]
    waiting: list[str] = []
    if groups:
        replies = yield [cmd("ZRANGE", keys.group_wait(S.text(g)), 0, -1) for g in groups]
        for reply in replies:
            waiting.extend(S.text(i) for i in reply)
    return {"waiting": waiting, "delayed": [S.text(i) for i in delayed]}


def _get_jobs_with_groups(keys: QueueKeys, wanted: list[str], grouped: dict[str, list[str]],
                          start: int, end: int,
                          asc: bool) -> Plan[list[tuple[str, dict[str, str]]]]:
    commands = []
    for state in wanted:
        if state in LIST_STATES:
            commands.append(cmd("LRANGE", keys.state_key(state), 0, -1))
        else:
            commands.append(cmd("ZRANGE", keys.state_key(state), 0, -1))
    replies = yield commands
    ids: list[str] = []
    for state, reply in zip(wanted, replies, strict=True):
        chunk = [S.text(i) for i in reply]
        if state in LIST_STATES:
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


def queue_names(prefix: str) -> Plan[list[str]]:
    """Every queue under ``prefix``, found by scanning for the keys every queue has."""
    names: set[str] = set()
    for marker in QUEUE_MARKERS:
        pattern = QueueKeys.queue_scan_pattern(prefix, marker)
        cursor: Any = 0
        while True:
            (reply,) = yield [cmd("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)]
            cursor, found = reply[0], reply[1]
            for key in found:
                name = QueueKeys.queue_name_from_marker(prefix, S.text(key), marker)
                if name is not None:
                    names.add(name)
            if int(cursor) == 0:
                break
    return sorted(names)


def queue_exists(keys: QueueKeys) -> Plan[bool]:
    """Whether the queue has any of the keys every queue has."""
    replies = yield [cmd("EXISTS", keys.queue_marker(marker)) for marker in QUEUE_MARKERS]
    return any(int(n) for n in replies)


def decode_json(value: str | None, default: Any = None) -> Any:
    """JSON text from Redis, tolerating absent or corrupt values."""
    if value is None or value == "":
        return default
    try:
        return json.loads(value)
    except ValueError:
        return value
