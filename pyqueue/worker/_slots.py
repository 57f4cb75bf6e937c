"""The worker's slots: one task per job in progress, each taking the next job handed out with its
finish, and the jobs they hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from ..job import JobBase
from ._gate import FetchGate
from ._report import Reporter
from ._tokens import LockTokens

NextJob = tuple[str, str, dict[str, str]] | None
Process = Callable[[str, str, dict[str, str]], Coroutine[Any, Any, NextJob]]


class Slots:
    """Up to ``concurrency`` tasks, each processing a job and then the jobs its
    finishes hand out (fetch-next). ``wake`` is set whenever a slot ends."""

    def __init__(self, concurrency: int, tokens: LockTokens, reporter: Reporter) -> None:
        self.concurrency = concurrency
        self.tokens = tokens
        self._reporter = reporter
        self.tasks: set[asyncio.Task[None]] = set()
        #: Jobs whose processor runs now: id -> (job, its slot's task).
        self.current: dict[str, tuple[JobBase, asyncio.Task[Any]]] = {}
        self.wake = asyncio.Event()
        self.process: Process | None = None
        #: The worker's fetch gate, told when a slot is done with a job.
        self.gate: FetchGate | None = None

    @property
    def free(self) -> int:
        """Slots without a task."""
        return self.concurrency - len(self.tasks)

    def spawn(self, job_id: str, token: str, fields: dict[str, str]) -> None:
        """Start a slot on a job taken from Redis."""
        self.tokens.hold(job_id, token)
        task = asyncio.create_task(self._slot(job_id, token, fields))
        self.tasks.add(task)
        task.add_done_callback(self._slot_done)

    def running(self) -> list[str]:
        """``id (name)`` of the jobs whose processor runs now (from any thread)."""
        for _ in range(3):
            try:
                return [f"{job_id} ({job.name})" for job_id, (job, _) in list(self.current.items())]
            except RuntimeError:  # changed while copied from another thread
                continue
        return []

    async def wait(self, grace: float, force: asyncio.Event) -> set[asyncio.Task[None]]:
        """Wait up to ``grace`` seconds for the slots to end (less once ``force`` is
        set); returns the slots still running."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        forced = asyncio.ensure_future(force.wait())
        try:
            pending: set[Any] = set(self.tasks)
            while pending and not force.is_set():
                left = deadline - loop.time()
                if left <= 0:
                    break
                _, pending = await asyncio.wait(pending | {forced}, timeout=left,
                                                return_when=asyncio.FIRST_COMPLETED)
                pending.discard(forced)
            return {task for task in self.tasks if not task.done()}
        finally:
            forced.cancel()

    def _slot_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.wake.set()
        if not task.cancelled() and task.exception() is not None:
            self._reporter.report("slot crashed", task.exception())  # type: ignore[arg-type]

    async def _slot(self, job_id: str, token: str, fields: dict[str, str]) -> None:
        """Process a job, then the jobs handed out with each finish (fetch-next)."""
        assert self.process is not None
        current: NextJob = (job_id, token, fields)
        while current is not None:
            job_id, token, fields = current
            try:
                current = await self.process(job_id, token, fields)
            finally:
                self.tokens.release(job_id, token)
                if self.gate is not None:
                    self.gate.release(job_id)
            if current is not None:
                self.tokens.hold(current[0], current[1])
