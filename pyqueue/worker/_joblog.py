"""The built-in hook that logs one line per finished job on ``pyqueue.worker``, rate-limited so a
busy worker does not flood its log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..job import JobBase
from .hooks import WorkerHooks

logger = logging.getLogger("pyqueue.worker")

#: Lines per second a worker logs about jobs before it summarises instead.
LINES_PER_SECOND = 10
#: The window, in seconds, the limit and the summary count over.
WINDOW = 1.0


def reason_of(error: BaseException) -> str:
    """The error's message, or its class name when the message is empty."""
    return str(error) or type(error).__name__


class JobLogHook(WorkerHooks):
    """INFO for each completed job (id, name, duration); WARNING for each failed
    attempt with its reason and what follows ("retrying in 2s, attempt 1/3" or
    "failed for good"). At most ``lines_per_second`` lines per second; jobs
    beyond that are counted and summarised once the window ends."""

    def __init__(self, queue: str, lines_per_second: int = LINES_PER_SECOND,
                 window: float = WINDOW, now_ms: Callable[[], int] | None = None) -> None:
        self.queue = queue
        self.limit = lines_per_second
        self.window = window
        #: The clock the job's ``processedOn`` was written with (the worker's
        #: clock, synced to the server's): the duration needs no per-job
        #: bookkeeping, so this hook costs one call per finished job.
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._window_start = 0.0
        self._lines = 0
        self._skipped = {"completed": 0, "failed": 0}
        self._flush: asyncio.TimerHandle | None = None

    def on_completed(self, job: JobBase, result: Any) -> None:
        if not logger.isEnabledFor(logging.INFO) or not self._allow("completed"):
            return
        started = job.fields.get("processedOn")
        took = ""
        if started:
            took = f" in {max(self._now_ms() - int(started), 0)} ms"
        logger.info("worker %s: job %s (%s) completed%s", self.queue, job.id, job.name, took)

    def on_retry(self, job: JobBase, error: BaseException, delay: float) -> None:
        if not logger.isEnabledFor(logging.WARNING) or not self._allow("failed"):
            return
        when = f"in {delay:g}s" if delay > 0 else "now"
        logger.warning("worker %s: job %s (%s) failed: %s; retrying %s, attempt %d/%d",
                       self.queue, job.id, job.name, reason_of(error), when,
                       job.attempts_made, job.attempts)

    def on_failed(self, job: JobBase, error: BaseException, will_retry: bool) -> None:
        if will_retry:
            return  # on_retry logs it, with the delay
        if not logger.isEnabledFor(logging.WARNING) or not self._allow("failed"):
            return
        logger.warning("worker %s: job %s (%s) failed for good after attempt %d/%d: %s",
                       self.queue, job.id, job.name, job.attempts_made,
                       max(job.attempts, job.attempts_made), reason_of(error))

    def on_worker_stop(self, worker: Any) -> None:
        self._summarise()

    def _allow(self, kind: str) -> bool:
        """Whether a line fits in this window; otherwise count it for the summary."""
        now = time.monotonic()
        if now - self._window_start >= self.window:
            self._summarise()
            self._window_start = now
            self._lines = 0
        if self._lines < self.limit:
            self._lines += 1
            return True
        self._skipped[kind] += 1
        if self._flush is None:  # summarise even if no job follows
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False
            self._flush = loop.call_later(self._window_start + self.window - now,
                                          self._summarise)
        return False

    def _summarise(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        completed, failed = self._skipped["completed"], self._skipped["failed"]
        if not completed and not failed:
            return
        self._skipped = {"completed": 0, "failed": 0}
        parts = []
        if completed:
            parts.append(f"{completed} more jobs completed")
        if failed:
            parts.append(f"{failed} more attempts failed")
        level = logging.WARNING if failed else logging.INFO
        logger.log(level, "worker %s: ... and %s in the last %gs", self.queue,
                   " and ".join(parts), self.window)
