"""Waiting for a job to finish, by following the queue's events stream."""

from __future__ import annotations

import time
from typing import Any

from . import _scripts as S
from ._keys import QueueKeys
from ._plan import Plan, cmd


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
