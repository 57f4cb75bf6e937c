"""Managing a queue: checked script calls, batched scripts run to the end, promote, retry, clean."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _scripts as S
from ._clock import Clock
from ._keys import QueueKeys
from ._plan import Command, Plan, cmd

#: Jobs or keys per call of a batched script.
BATCH = 1000


def simple(clock: Clock, build: Callable[[int], Command], /, *, op: str,
           job_id: str | None = None) -> Plan[Any]:
    """Run one script call once (``build(now_ms)``, a ``_scripts`` builder with
    its arguments bound) and check its reply."""
    yield from clock.sync()
    (reply,) = yield [build(clock.now_ms())]
    return S.check(reply, op=op, job_id=job_id)


def repeat_until_done(clock: Clock, build: Callable[[int], Command], /, *,
                      op: str) -> Plan[int]:
    """Call a batched script (``build(now_ms)``) until it reports nothing left;
    returns the calls made."""
    yield from clock.sync()
    calls = 0
    while True:
        (reply,) = yield [build(clock.now_ms())]
        calls += 1
        if S.check(reply, op=op) == 0:
            return calls


def promote_all(keys: QueueKeys, clock: Clock) -> Plan[int]:
    """Promote every delayed job; returns how many."""
    yield from clock.sync()
    total = 0
    while True:
        (reply,) = yield [S.promote(keys, clock.now_ms(), batch=BATCH)]
        moved = int(S.check(reply, op="promote_jobs"))
        total += moved
        if moved < BATCH:
            return total


def promote_due(keys: QueueKeys, clock: Clock, ahead_ms: int) -> Plan[list[str]]:
    """Promote the delayed jobs due within ``ahead_ms`` from now (the time
    control of ``pyqueue.testing``); returns their ids. A job that a worker
    promoted meanwhile is skipped."""
    yield from clock.sync()
    last = (clock.now_ms() + ahead_ms + 1) * 4096 - 1  # scores: due_ms * 4096 + seq
    plain, grouped = yield [cmd("ZRANGEBYSCORE", keys.delayed, 0, last),
                            cmd("ZRANGEBYSCORE", keys.groups_delayed, 0, last)]
    ids = [S.text(job_id) for job_id in [*plain, *grouped]]
    if not ids:
        return []
    replies = yield [S.promote(keys, clock.now_ms(), id=job_id) for job_id in ids]
    return [job_id for job_id, reply in zip(ids, replies, strict=True)
            if isinstance(reply, int) and reply == 1]


def retry_all(keys: QueueKeys, clock: Clock, state: str, count: int) -> Plan[int]:
    """Move up to ``count`` finished jobs of ``state`` back to be processed."""
    yield from clock.sync()
    total = 0
    while total < count:
        step = min(BATCH, count - total)
        (reply,) = yield [S.reprocess_jobs(keys, clock.now_ms(), state=state,
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
        (reply,) = yield [S.clean(keys, clock.now_ms(), state=state, cutoff=cutoff,
                                  limit=min(want, BATCH))]
        ids = [S.text(i) for i in reply]
        removed.extend(ids)
        if len(ids) < min(want, BATCH) or (limit > 0 and len(removed) >= limit):
            return removed
