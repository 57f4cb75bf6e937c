"""The worker package: ``Worker`` takes jobs from a queue and runs a processor on each.

The worker is asyncio. Its fetch loop fills free slots with one fetch call
(several jobs per round trip) and otherwise blocks on the queue's wake-up
marker (``BZPOPMIN``) on a connection of its own. A slot that finishes a job
asks for the next one in the same call that finishes it (fetch-next), so a
busy worker costs one round trip per job.

Plain ``def`` processors run in a thread pool (or child processes), so they
cannot block the loop. Locks are renewed, and the stalled-job check runs,
from a maintenance thread with its own connection: a processor that hogs the
event loop cannot starve the renewal and lose its lock.

Parts: ``_options`` (validation), ``_fetch`` (fetch loop, backoff),
``_slots`` and ``_tokens`` (slots, lock tokens), ``_executors`` (async,
thread, process), ``_jobs`` (running a job, writing its outcome),
``_outcome`` (the pure outcome decision), ``_finish`` (finish batcher),
``_maintenance`` (periodic tasks in a thread), ``_lag`` (event-loop lag),
``_events`` and ``hooks`` (local events, hooks), ``_joblog`` (per-job log
lines), ``_signals`` (``run()``), ``_connections``, ``_report``.
"""

from __future__ import annotations

from ._events import EVENTS, WorkerEvent
from ._executors import Processor
from ._finish import FINISH_CHUNKS, Finishes, NextJob
from ._jobs import STACKTRACE_LIMIT
from ._maintenance import HEARTBEAT_SECONDS
from ._worker import Worker
from .hooks import WorkerHooks

__all__ = [
    "EVENTS",
    "FINISH_CHUNKS",
    "HEARTBEAT_SECONDS",
    "STACKTRACE_LIMIT",
    "Finishes",
    "NextJob",
    "Processor",
    "Worker",
    "WorkerEvent",
    "WorkerHooks",
]
