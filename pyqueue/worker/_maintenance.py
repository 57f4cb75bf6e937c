"""The maintenance thread: runs the worker's periodic tasks (lock renewal, stalled check,
cancellation polling, heartbeat, loop-lag check) on its own connection, out of reach of a busy
event loop.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis

from .. import _ops, _ops_worker
from .. import _scripts as S
from .._keys import QueueKeys
from .._plan import Plan, needs_reconnect
from .._runner import run_sync
from ..connection import SyncClient
from ._gate import FetchGate
from ._report import Reporter
from ._tokens import LockTokens

logger = logging.getLogger("pyqueue.worker")

#: Longest pause, in seconds, after repeated unexpected errors of one task.
MAX_BACKOFF = 10.0
#: Seconds between heartbeats published for ``pyqueue health``.
HEARTBEAT_SECONDS = 5.0
#: Seconds between checks that the event loop is not blocked.
LAG_CHECK_SECONDS = 0.25


@dataclass
class Periodic:
    """A task run every ``interval`` seconds (the first run at once, or after one
    interval with ``delay_first``)."""

    name: str
    interval: float
    run: Callable[[], None]
    delay_first: bool = False


class MaintenanceThread(threading.Thread):
    """Runs ``tasks`` when each is due until stopped. A task that raises is
    logged (throttled) and retried after a bounded exponential backoff."""

    def __init__(self, queue: str, tasks: list[Periodic], reporter: Reporter) -> None:
        super().__init__(name=f"pyqueue-locks-{queue}", daemon=True)
        self._tasks = tasks
        self._reporter = reporter
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Ask the thread to end (it ends within one wait)."""
        self._stop_event.set()

    def run(self) -> None:
        start = time.monotonic()
        due = [start + (t.interval if t.delay_first else 0.0) for t in self._tasks]
        failures = [0] * len(self._tasks)
        while not self._stop_event.is_set():
            for i, task in enumerate(self._tasks):
                now = time.monotonic()
                if now < due[i]:
                    continue
                try:
                    task.run()
                except Exception as exc:  # never die, never spin
                    failures[i] += 1
                    pause = min(task.interval * 2 ** failures[i], max(task.interval, MAX_BACKOFF))
                    due[i] = time.monotonic() + pause
                    self._reporter.warn(f"{task.name} failed", exc)
                else:
                    failures[i] = 0
                    due[i] = now + task.interval
            self._stop_event.wait(max(min(due) - time.monotonic(), 0.005))


class SyncRunner:
    """The maintenance thread's Redis access: plans on its own sync client, with
    failures reported instead of raised."""

    def __init__(self, client: SyncClient, reporter: Reporter) -> None:
        self.client = client
        self._reporter = reporter

    def guarded(self, what: str, plan: Plan[Any]) -> Any:
        """Run ``plan``; on failure report it, drop the connections after a failover,
        and return None."""
        try:
            return run_sync(self.client, plan)
        except Exception as exc:
            if needs_reconnect(exc) and isinstance(self.client, redis.Redis):
                self.client.connection_pool.disconnect()
            self._reporter.report_threadsafe(f"{what} failed", exc)
            return None


class RenewLocks:
    """Extends every held lock by ``lock_ms`` in one call; reports the lost ones."""

    def __init__(self, runner: SyncRunner, keys: QueueKeys, clock: _ops.Clock,
                 tokens: LockTokens, lock_ms: int, on_lost: Callable[[str], None]) -> None:
        self._runner, self._keys, self._clock = runner, keys, clock
        self._tokens, self._lock_ms, self._on_lost = tokens, lock_ms, on_lost

    def __call__(self) -> None:
        ids, tokens = self._tokens.snapshot()
        if not ids:
            return
        plan = _ops.simple(self._clock, partial(S.extend_locks, self._keys, ids=ids,
                                                tokens=tokens, lock_ms=self._lock_ms),
                           op="extend_locks")
        reply = self._runner.guarded("lock renewal", plan)
        if reply is None:
            return
        # A job whose finish was sent meanwhile is no longer held: not a loss.
        seen = dict(zip(ids, tokens, strict=True))
        for job_id in self._tokens.drop_lost([S.text(i) for i in reply], seen):
            self._on_lost(job_id)


class CheckStalled:
    """Moves active jobs without a lock back to wait (the queue's stalled check)."""

    def __init__(self, runner: SyncRunner, keys: QueueKeys, clock: _ops.Clock,
                 max_stalled: int, stalled_ms: int, on_stalled: Callable[[str], None]) -> None:
        self._runner, self._keys, self._clock = runner, keys, clock
        self._max_stalled, self._stalled_ms, self._on_stalled = max_stalled, stalled_ms, \
            on_stalled

    def __call__(self) -> None:
        plan = _ops.simple(self._clock, partial(
            S.move_stalled_jobs_to_wait, self._keys, max_stalled=self._max_stalled,
            interval_ms=self._stalled_ms), op="stalled_check")
        reply = self._runner.guarded("stalled check", plan)
        if reply:
            for job_id in reply[0]:
                self._on_stalled(S.text(job_id))


class PollCancellations:
    """Hands cancellation requests (``Queue.cancel_job``) for held jobs to
    ``on_cancel(job_id, reason, remove)``."""

    def __init__(self, client: SyncClient, keys: QueueKeys, tokens: LockTokens,
                 on_cancel: Callable[[str, str, bool], None]) -> None:
        self._client, self._keys, self._tokens, self._on_cancel = client, keys, tokens, \
            on_cancel

    def __call__(self) -> None:
        ids, _ = self._tokens.snapshot()
        if not ids:
            return
        for job_id, reason, remove in run_sync(self._client,
                                               _ops_worker.cancel_requests(self._keys, ids)):
            self._on_cancel(job_id, reason, remove)


def worker_tasks(runner: SyncRunner, keys: QueueKeys, clock: _ops.Clock, tokens: LockTokens,
                 *, lock_ms: int, stalled_ms: int, max_stalled: int, cancel_poll: float,
                 heartbeat: Callable[[], None], lag: Callable[[], None],
                 on_stalled: Callable[[str], None], on_lost: Callable[[str], None],
                 on_cancel: Callable[[str, str, bool], None]) -> list[Periodic]:
    """A worker's periodic tasks, each given what it needs."""
    return [
        Periodic("stalled check", stalled_ms / 1000,
                 CheckStalled(runner, keys, clock, max_stalled, stalled_ms, on_stalled)),
        Periodic("lock renewal", lock_ms / 2000,
                 RenewLocks(runner, keys, clock, tokens, lock_ms, on_lost), delay_first=True),
        Periodic("cancellation poll", cancel_poll,
                 PollCancellations(runner.client, keys, tokens, on_cancel)),
        Periodic("heartbeat", HEARTBEAT_SECONDS, heartbeat),
        Periodic("loop check", LAG_CHECK_SECONDS, lag),
    ]


def gate_renewal(runner: SyncRunner, gate: FetchGate, tokens: LockTokens,
                 lock_ms: int) -> Periodic:
    """The fetch gate's renewal for the held jobs, as often as the locks'."""
    return Periodic("gate renewal", lock_ms / 2000,
                    lambda: gate.renew(runner, tokens.snapshot()[0], lock_ms), delay_first=True)


class Heartbeat:
    """Publishes the worker's health for ``pyqueue health`` (``pq:workers`` zset,
    score = heartbeat ms; ``pq:workerinfo`` hash, id -> JSON)."""

    def __init__(self, client: SyncClient, keys: QueueKeys, worker_id: str,
                 health: Callable[[], dict[str, Any]]) -> None:
        self._client, self._keys, self._id, self._health = client, keys, worker_id, health

    def __call__(self) -> None:
        info = json.dumps({**self._health(), "host": socket.gethostname(), "pid": os.getpid(),
                           "heartbeat": time.time()})
        run_sync(self._client, _ops_worker.heartbeat(self._keys, self._id,
                                                     int(time.time() * 1000), info))
