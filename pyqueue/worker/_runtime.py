"""The running parts of one worker (slots, fetch loop, finish batcher, job runner,
executor, maintenance thread, loop beat), wired together, with their start and stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import _ops, _ops_worker
from .._keys import QueueKeys
from .._plan import Plan
from .._runner import run_async, run_sync
from ..job import Binding, JobBase
from . import _maintenance as M
from ._connections import Connections
from ._events import HookSet, LocalEvents
from ._executors import (
    AsyncExecutor,
    Executor,
    ProcessExecutor,
    Processor,
    ThreadExecutor,
    is_async_processor,
)
from ._fetch import FetchLoop, FetchParams
from ._finish import FinishBatcher
from ._gate import FetchGate
from ._jobs import JobRunner, Status
from ._lag import LagCheck, LoopBeat
from ._options import WorkerOptions
from ._report import Reporter
from ._slots import Slots
from ._tokens import LockTokens


@dataclass(frozen=True)
class Identity:
    """Who the worker is: its queue, its id and the name it gives itself."""

    name: str
    prefix: str
    keys: QueueKeys
    worker_id: str
    worker_name: str | None


class Runtime:
    """Builds a worker's parts at construction, starts them in :meth:`start` and
    stops them, in order, in :meth:`stop`."""

    def __init__(self, who: Identity, clock: _ops.Clock, options: WorkerOptions,
                 conns: Connections, events: LocalEvents, hooks: HookSet,
                 reporter: Reporter, target: Processor, is_async: bool) -> None:
        self.who, self.clock, self.options, self.conns = who, clock, options, conns
        self.events, self.hooks, self.reporter = events, hooks, reporter
        self.target, self.is_async = target, is_async
        self.closing = False
        self.status = Status()
        self.slots = Slots(options.concurrency, LockTokens(), reporter)
        self.fetch_params = FetchParams(who.worker_id, options.lock_ms, who.worker_name,
                                        clock, options.limiter)
        keys = who.keys
        self.fetch = FetchLoop(
            name=who.name, keys=keys, clock=clock, slots=self.slots, status=self.status,
            connections=conns, events=events, hooks=hooks, reporter=reporter, run=self.run,
            fetch_params=self.fetch_params, closing=lambda: self.closing,
            drain_delay=options.drain_delay)
        self.batcher = FinishBatcher(
            keys, clock, options.concurrency, transport=conns.transport,
            fetch_params=self.fetch_params, closing=lambda: self.closing,
            on_fetched=self.fetch.fetched, spawn=self.slots.spawn,
            metrics_points=options.metrics_points)
        self.jobs = JobRunner(
            keys=keys, clock=clock, options=options, slots=self.slots, batcher=self.batcher,
            events=events, hooks=hooks, reporter=reporter, status=self.status, run=self.run,
            reset=lambda exc: conns.reset_if_failover(who.name, exc), is_async=is_async)
        self.slots.process = self.jobs.process
        self.jobs.binding = Binding(keys, clock, self.run, is_async=True,
                                    on_progress=self._on_progress, run_blocking=self.run_blocking)
        self.beat = LoopBeat()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.main: asyncio.Task[None] | None = None
        self.keeper: M.MaintenanceThread | None = None
        self.executor: Executor | None = None
        self.gate: FetchGate | None = None

    def set_gate(self, gate: FetchGate) -> None:
        """Consult ``gate`` around every fetch, finish and lock renewal (before start)."""
        self.gate = self.fetch.gate = self.batcher.gate = self.slots.gate = gate

    async def run(self, plan: Plan[Any]) -> Any:
        """Run a per-job plan on the pipelined connection (or the client's pool)."""
        return await run_async(self.conns.transport(), plan)

    async def run_blocking(self, plan: Plan[Any]) -> Any:
        """Run a plan with blocking commands on the client's pool."""
        return await run_async(self.conns.client, plan)

    def run_sync(self, plan: Plan[Any]) -> Any:
        """Run a plan on the sync client (threads)."""
        assert self.conns.sync is not None
        return run_sync(self.conns.sync, plan)

    async def start(self, *, client_name: str, pipelined: bool, cancel_poll: float,
                    health: Callable[[], dict[str, Any]],
                    on_idle: Callable[[], None]) -> None:
        """Open the connections, start the executor, the maintenance thread, the loop
        beat and the fetch loop (``on_idle`` is called if burst mode ends it)."""
        who = self.who
        self.loop = asyncio.get_running_loop()
        self.status.state = "running"
        sync = self.conns.open(client_name, pipelined)
        if not self.is_async:
            self.jobs.binding = Binding(who.keys, self.clock, self.run_sync, is_async=False,
                                        on_progress=self._on_progress_threadsafe)
        self.executor = self.jobs.executor = self._make_executor()
        self.beat.start(self.loop)
        tasks = M.worker_tasks(
            M.SyncRunner(sync, self.reporter), who.keys, self.clock, self.slots.tokens,
            lock_ms=self.options.lock_ms, stalled_ms=self.options.stalled_ms,
            max_stalled=self.options.max_stalled_count, cancel_poll=cancel_poll,
            heartbeat=M.Heartbeat(sync, who.keys, who.worker_id, health),
            lag=LagCheck(who.name, self.beat, self.slots.running),
            on_stalled=lambda job_id: self.events.call_soon(self._stalled, job_id),
            on_lost=self._lock_lost,
            on_cancel=lambda *a: self.events.call_soon(self.jobs.cancel_local, *a))
        if self.gate is not None:
            tasks.append(M.gate_renewal(M.SyncRunner(sync, self.reporter), self.gate,
                                        self.slots.tokens, self.options.lock_ms))
        self.keeper = M.MaintenanceThread(who.name, tasks, self.reporter)
        self.keeper.start()
        self.main = asyncio.create_task(self._main(on_idle), name=f"pyqueue-worker-{who.name}")

    async def _main(self, on_idle: Callable[[], None]) -> None:
        await self.fetch.run()
        if not self.closing:  # burst mode found the queue idle
            on_idle()

    def _make_executor(self) -> Executor:
        target = self.target
        if is_async_processor(target):  # the check that set is_async
            return AsyncExecutor(target)
        size = self.options.concurrency
        if self.options.execution == "process":
            return ProcessExecutor(target, size, self.who.prefix, self.who.name,
                                   self.conns.client)
        return ThreadExecutor(target, size, self.who.name)

    async def stop(self, grace: float, force: asyncio.Event) -> None:
        """Stop fetching, wait up to ``grace`` for the slots, hand back the jobs
        still running, stop the maintenance thread and close the connections."""
        self.closing = True
        self.status.state = "closing"
        self.slots.wake.set()
        if self.main is not None:
            self.main.cancel()
            await asyncio.gather(self.main, return_exceptions=True)
        if self.slots.tasks:
            pending = await self.slots.wait(grace, force)
            if pending:
                await self.jobs.release_active()
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        if self.keeper is not None:
            self.keeper.stop()
            await asyncio.get_running_loop().run_in_executor(None, self.keeper.join, 5)
            keys, client = self.who.keys, self.conns.client
            with contextlib.suppress(Exception):
                await run_async(client, _ops_worker.sign_off(keys, self.who.worker_id))
        self.beat.stop()
        if self.executor is not None:
            self.executor.close()
        await self.conns.close()
        self.status.state = "closed"

    def _stalled(self, job_id: str) -> None:
        self.events.emit("stalled", job_id)
        if self.hooks.on_stalled:
            self.hooks.call(self.hooks.on_stalled, job_id)

    def _lock_lost(self, job_id: str) -> None:
        """From the maintenance thread: a renewal found ``job_id``'s lock gone."""
        self.events.emit_threadsafe("lock_lost", job_id, None)
        self.reporter.warn("lock lost", f"lost the lock on job {job_id}")

    def _on_progress(self, job: JobBase, value: Any) -> None:
        self.events.emit("progress", job, value)

    def _on_progress_threadsafe(self, job: JobBase, value: Any) -> None:
        self.events.emit_threadsafe("progress", job, value)
