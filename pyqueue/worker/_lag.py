"""The event-loop lag monitor: a ticker on the loop and a check from the maintenance thread that
warns, naming the running jobs, when the loop was blocked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

logger = logging.getLogger("pyqueue.worker")

#: Seconds between ticks of the loop's heartbeat.
TICK = 0.2
#: A loop that has not ticked for this many seconds counts as blocked.
BLOCKED_AFTER = 1.0
#: At most one warning per this many seconds.
WARN_EVERY = 10.0


class LoopBeat:
    """Stamps ``time.monotonic()`` every :data:`TICK` seconds from the event loop;
    a stale stamp means the loop is blocked (by an ``async def`` processor that
    calls blocking code, for example)."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin ticking on ``loop`` (from the loop)."""
        self._loop = loop
        self._tick()

    def stop(self) -> None:
        """Stop ticking (from the loop)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._loop = None

    def _tick(self) -> None:
        self.last = time.monotonic()
        if self._loop is not None:
            self._handle = self._loop.call_later(TICK, self._tick)


class LagCheck:
    """Run from the maintenance thread: warns when the loop has not ticked for
    :data:`BLOCKED_AFTER` seconds, naming ``running()`` (the jobs in progress)."""

    def __init__(self, queue: str, beat: LoopBeat, running: Callable[[], list[str]],
                 blocked_after: float = BLOCKED_AFTER, warn_every: float = WARN_EVERY) -> None:
        self._queue = queue
        self._beat = beat
        self._running = running
        self._blocked_after = blocked_after
        self._warn_every = warn_every
        self._warned_at = -1e9
        self._episode = -1.0  # the stamp of the block already warned about

    def __call__(self) -> None:
        now = time.monotonic()
        stamp = self._beat.last
        lag = now - stamp
        if lag < self._blocked_after or stamp == self._episode:
            return
        self._episode = stamp
        if now - self._warned_at < self._warn_every:
            return
        self._warned_at = now
        jobs = self._running()
        logger.warning(
            "worker %s: the event loop has been blocked for %.1f s (jobs running: %s); "
            "an async def processor must not call blocking code (time.sleep, blocking "
            "I/O): await async calls instead, or use a plain def processor, which runs "
            "in a thread", self._queue, lag, ", ".join(jobs) if jobs else "none")
