"""``Worker``: the public class that assembles the worker's parts (fetch loop, slots, executors,
finish batcher, maintenance thread, events and hooks).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
import redis.asyncio

from .. import _ops
from .. import backoff as _backoff
from .._keys import QueueKeys, validate_prefix, validate_queue_name
from .._plan import Plan, run_async, run_sync, translate
from .._procpool import import_path
from ..connection import async_client
from ..errors import ConfigurationError, InvalidJobOptionsError, RedisStateError
from ..job import Binding, Job
from ..options import Duration, duration_ms
from . import _maintenance as M
from ._connections import Connections
from ._events import HookSet, LocalEvents, WorkerEvent
from ._executors import AsyncExecutor, Executor, ProcessExecutor, ThreadExecutor
from ._fetch import FetchLoop
from ._finish import FinishBatcher
from ._joblog import JobLogHook
from ._jobs import JobRunner, Status
from ._lag import LagCheck, LoopBeat
from ._options import validate_options
from ._report import LogThrottle, Reporter
from ._signals import run_until_signal
from ._slots import Slots
from ._tokens import LockTokens
from .hooks import WorkerHooks

logger = logging.getLogger("pyqueue.worker")

Processor = Callable[[Job], Any]
#: Seconds between heartbeats published for ``pyqueue health``.
HEARTBEAT_SECONDS = 5.0
#: Seconds between checks that the event loop is not blocked.
LAG_CHECK_SECONDS = 0.25


class Worker:
    """Processes jobs of one queue.

    Pass an ``async def`` or plain ``def`` processor taking a ``Job``, or
    subclass and override :meth:`process`. Its return value (JSON) becomes
    the job's return value; an exception fails the attempt.

    Options: ``concurrency`` (jobs at once), ``limiter={"max", "duration"}``
    (global across all workers), ``lock_duration``, ``stalled_interval``,
    ``max_stalled_count``, ``remove_on_complete``/``remove_on_fail`` (defaults
    for jobs that set none), ``backoff_strategy`` (for ``"custom"`` backoff),
    ``shutdown_grace`` (seconds ``close()`` waits for active jobs before it
    hands them back), ``drain_delay`` (longest block on an idle queue),
    ``worker_name`` (stored as the job's ``pb`` and in the connection name),
    ``pipelined`` (share one auto-pipelining connection among all slots for
    the per-job commands; False keeps redis-py's pool), ``execution``
    (``"thread"`` or ``"process"``: run ``def`` processors in child processes
    that a timeout or cancellation kills), ``require_noeviction`` (refuse to
    start unless Redis' maxmemory-policy is ``noeviction``; otherwise only
    warn), ``autorun`` (start as soon as an event loop runs), ``hooks``
    (:class:`WorkerHooks` instances: metrics, tracing, logging), ``log_jobs``
    (one log line per finished job on ``pyqueue.worker``, rate-limited).
    """

    def __init__(
        self,
        name: str,
        processor: Processor | None = None,
        *,
        connection: str | redis.asyncio.Redis | None = None,
        prefix: str = "bull",
        concurrency: int = 1,
        limiter: Mapping[str, Any] | None = None,
        lock_duration: Duration = 30,
        stalled_interval: Duration = 30,
        max_stalled_count: int = 1,
        remove_on_complete: bool | int | Mapping[str, Any] | None = None,
        remove_on_fail: bool | int | Mapping[str, Any] | None = None,
        backoff_strategy: _backoff.BackoffStrategy | None = None,
        shutdown_grace: Duration = 30,
        drain_delay: Duration = 5,
        worker_name: str | None = None,
        pipelined: bool = True,
        execution: str = "thread",
        require_noeviction: bool = False,
        autorun: bool = True,
        hooks: Iterable[WorkerHooks] = (),
        log_jobs: bool = True,
    ) -> None:
        self.name = validate_queue_name(name)
        self.prefix = validate_prefix(prefix)
        self.keys = QueueKeys(self.prefix, self.name)
        if processor is not None and not callable(processor):
            raise InvalidJobOptionsError(f"processor must be callable, got {processor!r}")
        if processor is None and type(self).process is Worker.process:
            raise InvalidJobOptionsError(
                "Worker needs a processor: pass one, or subclass Worker and override process()"
            )
        self._processor = processor
        opts = self.options = validate_options(
            concurrency=concurrency, limiter=limiter, lock_duration=lock_duration,
            stalled_interval=stalled_interval, max_stalled_count=max_stalled_count,
            remove_on_complete=remove_on_complete, remove_on_fail=remove_on_fail,
            backoff_strategy=backoff_strategy, shutdown_grace=shutdown_grace,
            drain_delay=drain_delay, execution=execution)
        self.concurrency = opts.concurrency
        self.lock_ms = opts.lock_ms
        self.stalled_ms = opts.stalled_ms
        self.max_stalled_count = opts.max_stalled_count
        self.shutdown_grace = opts.shutdown_grace
        self.drain_delay = opts.drain_delay
        self.execution = opts.execution
        self.worker_name = worker_name
        self.pipelined = pipelined
        self.cancel_poll_interval = 0.5
        self.require_noeviction = require_noeviction
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = _ops.Clock(meta_key=self.keys.meta)
        self._is_async = inspect.iscoroutinefunction(self._target())
        if execution == "process":
            if self._is_async:
                raise InvalidJobOptionsError(
                    "execution='process' runs def processors; an async processor runs on "
                    "the event loop")
            import_path(self._target())  # fail now, not at the first job
        self._events = LocalEvents(self.name)
        all_hooks = [*hooks, JobLogHook(self.name)] if log_jobs else list(hooks)
        self._hooks = HookSet(self.name, all_hooks)
        client, owns_client = async_client(connection)
        self._conns = Connections(client, owns_client)
        self._reporter = Reporter(self.name, self._events, LogThrottle())
        self._status = Status()
        self._slots = Slots(self.concurrency, LockTokens(), self._reporter)
        self._fetch_seq = 0
        self._closing = False
        self._fetch = FetchLoop(
            name=self.name, keys=self.keys, clock=self.clock, slots=self._slots,
            status=self._status, connections=self._conns, events=self._events,
            hooks=self._hooks, reporter=self._reporter, run=self._run,
            fetch_params=self._fetch_params, closing=lambda: self._closing,
            drain_delay=self.drain_delay)
        self._batcher = FinishBatcher(
            self.keys, self.clock, self.concurrency, fast=lambda: self._conns.fast,
            run=self._run, fetch_params=self._fetch_params, closing=lambda: self._closing,
            on_fetched=self._fetch.fetched, spawn=self._slots.spawn)
        self._jobs = JobRunner(
            keys=self.keys, clock=self.clock, options=opts, slots=self._slots,
            batcher=self._batcher, events=self._events, hooks=self._hooks,
            reporter=self._reporter, status=self._status, run=self._run,
            reset=lambda exc: self._conns.reset_if_failover(self.name, exc),
            is_async=self._is_async)
        self._slots.process = self._jobs.process
        self._jobs.binding = Binding(self.keys, self.clock, self._run, is_async=True,
                                     on_progress=self._on_progress,
                                     run_blocking=self._run_blocking)
        self._beat = LoopBeat()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._keeper: M.MaintenanceThread | None = None
        self._executor: Executor | None = None
        self._closed = asyncio.Event()
        self._force = asyncio.Event()
        self._running = False
        if autorun:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._autostart = loop.create_task(self.start())
                self._autostart.add_done_callback(self._autostart_done)

    # --- public API ----------------------------------------------------------------

    async def process(self, job: Job) -> Any:
        """Process one job; override in a subclass, or pass ``processor=``."""
        raise NotImplementedError  # pragma: no cover - replaced by the processor

    def on(self, event: WorkerEvent, callback: Callable[..., Any]) -> Worker:
        """Call ``callback`` on a local event: active, progress, completed, failed,
        stalled, error, drained, closed (and lock_lost). Returns the worker."""
        self._events.add(event, callback)
        return self

    @property
    def client(self) -> redis.asyncio.Redis:
        """The redis-py asyncio client the worker was given (or made)."""
        return self._conns.client

    @property
    def running(self) -> bool:
        """Whether the worker has started and not closed."""
        return self._running

    @property
    def state(self) -> str:
        """idle, running, reconnecting, closing or closed."""
        return self._status.state

    @property
    def last_fetch_at(self) -> float | None:
        """``time.time()`` of the last fetch that returned (None before the first)."""
        return self._status.last_fetch_at

    @property
    def jobs_processed(self) -> int:
        """Jobs this worker finished (completed, or failed for good)."""
        return self._status.jobs_processed

    @property
    def active_count(self) -> int:
        """Jobs being processed by this worker now."""
        return len(self._slots.tokens)

    def health(self) -> dict[str, Any]:
        """Whether this worker is actually consuming, not only whether Redis answers.

        ``consuming`` is true while the worker runs and its main loop has
        completed a fetch or a blocking wait for jobs within the last
        ``drain_delay + 10`` seconds (an idle worker blocked on an empty queue
        is healthy; one stuck reconnecting is not). Also: ``state``
        (idle, running, reconnecting, closing, closed), ``last_fetch_at``
        (epoch seconds of the last fetch that returned), ``active``,
        ``jobs_processed``, ``worker_id``.
        """
        status = self._status
        fresh = status.last_ok is not None and \
            time.monotonic() - status.last_ok <= self.drain_delay + 10
        return {
            "worker_id": self.id,
            "queue": self.name,
            "state": status.state,
            "consuming": bool(self._running and status.state == "running" and fresh),
            "last_fetch_at": status.last_fetch_at,
            "active": self.active_count,
            "jobs_processed": status.jobs_processed,
        }

    async def start(self, burst: bool = False) -> None:
        """Start consuming in the background (returns once started). Calls that
        overlap (autorun and ``async with``) share one start; a start that
        failed (Redis unreachable) may be tried again. With ``burst`` the worker
        closes itself once no job is waiting, active, prioritized or due."""
        if self._closing:
            return
        if burst:
            self._fetch.burst = True
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
            self._starting.add_done_callback(self._start_done)
        await asyncio.shield(self._starting)

    def _start_done(self, future: asyncio.Future[None]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._starting = None  # let a later start() try again

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._events.loop = self._loop
        await self._check_eviction_policy()
        self._running = True
        self._status.state = "running"
        sync = self._conns.open(self._client_name(), self.pipelined)
        if not self._is_async:
            self._jobs.binding = Binding(self.keys, self.clock, self._run_sync, is_async=False,
                                         on_progress=self._on_progress_threadsafe)
        self._executor = self._jobs.executor = self._make_executor()
        self._beat.start(self._loop)
        self._keeper = M.MaintenanceThread(self.name, self._maintenance(sync), self._reporter)
        self._keeper.start()
        self._main = asyncio.create_task(self._main_loop(), name=f"pyqueue-worker-{self.name}")
        if self._hooks.on_worker_start:
            self._hooks.call(self._hooks.on_worker_start, self)

    def _make_executor(self) -> Executor:
        target = self._target()
        if self._is_async:
            return AsyncExecutor(target)
        if self.execution == "process":
            return ProcessExecutor(target, self.concurrency, self.prefix, self.name,
                                   self._conns.client)
        return ThreadExecutor(target, self.concurrency, self.name)

    def _maintenance(self, sync: redis.Redis) -> list[M.Periodic]:
        """The maintenance thread's tasks, each given what it needs."""
        runner = M.SyncRunner(sync, self._reporter)
        tokens, keys, clock, events = self._slots.tokens, self.keys, self.clock, self._events
        return [
            M.Periodic("stalled check", self.stalled_ms / 1000, M.CheckStalled(
                runner, keys, clock, self.max_stalled_count, self.stalled_ms,
                lambda job_id: events.call_soon(self._stalled, job_id))),
            M.Periodic("lock renewal", self.lock_ms / 2000, M.RenewLocks(
                runner, keys, clock, tokens, self.lock_ms, self._lock_lost), delay_first=True),
            M.Periodic("cancellation poll", self.cancel_poll_interval, M.PollCancellations(
                sync, keys, tokens, lambda *a: events.call_soon(self._jobs.cancel_local, *a))),
            M.Periodic("heartbeat", HEARTBEAT_SECONDS, M.Heartbeat(sync, keys, self.id,
                                                                   self.health)),
            M.Periodic("loop check", LAG_CHECK_SECONDS, LagCheck(self.name, self._beat,
                                                                 self._slots.running)),
        ]

    def _stalled(self, job_id: str) -> None:
        self._events.emit("stalled", job_id)
        if self._hooks.on_stalled:
            self._hooks.call(self._hooks.on_stalled, job_id)

    def _lock_lost(self, job_id: str) -> None:
        """From the maintenance thread: a renewal found ``job_id``'s lock gone."""
        self._events.emit_threadsafe("lock_lost", job_id, None)
        self._reporter.warn("lock lost", f"lost the lock on job {job_id}")

    async def _main_loop(self) -> None:
        await self._fetch.run()
        if not self._closing:  # burst mode found the queue idle
            self._stopping = asyncio.ensure_future(self.close())

    def _autostart_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self._events.emit("error", exc)
            logger.error("worker %s: could not start: %s", self.name, exc)

    async def _check_eviction_policy(self) -> None:
        """Warn (or refuse, with ``require_noeviction``) when Redis may evict keys:
        an evicted job hash or lock is a lost or duplicated job."""
        try:
            reply = await self._conns.client.config_get("maxmemory-policy")
        except redis.exceptions.ResponseError:
            return  # CONFIG is disabled (managed Redis): nothing to check
        except redis.exceptions.RedisError as exc:
            raise translate(exc) from exc
        policy = next(iter(reply.values()), None) if reply else None
        if isinstance(policy, bytes):
            policy = policy.decode()
        if policy is None or policy == "noeviction":
            return
        message = (f"Redis maxmemory-policy is {policy!r}, not 'noeviction': under memory "
                   "pressure Redis may evict job data and locks, losing or repeating jobs")
        if self.require_noeviction:
            raise RedisStateError(message)
        logger.warning("worker %s: %s", self.name, message)

    async def wait_closed(self) -> None:
        """Wait until the worker has closed."""
        await self._closed.wait()

    async def close(self, force: bool = False) -> None:
        """Stop taking jobs, let active ones finish (up to ``shutdown_grace``; not at
        all with ``force``), hand the rest back to the queue, and release connections."""
        if force:
            self._force.set()  # also cuts short a close() already waiting
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        self._status.state = "closing"
        self._slots.wake.set()
        if self._main is not None:
            self._main.cancel()
            await asyncio.gather(self._main, return_exceptions=True)
        if self._slots.tasks:
            pending = await self._wait_active(0 if force else self.shutdown_grace)
            if pending:
                await self._jobs.release_active()
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        if self._keeper is not None:
            self._keeper.stop()
            await asyncio.get_running_loop().run_in_executor(None, self._keeper.join, 5)
            with contextlib.suppress(Exception):
                await self.client.zrem(self.keys.key("pq:workers"), self.id)
                await self.client.hdel(self.keys.key("pq:workerinfo"), self.id)
        self._beat.stop()
        if self._executor is not None:
            self._executor.close()
        await self._conns.close()
        self._running = False
        self._status.state = "closed"
        self._closed.set()
        self._events.emit("closed")
        if self._hooks.on_worker_stop:
            self._hooks.call(self._hooks.on_worker_stop, self)

    async def _wait_active(self, grace: float) -> set[asyncio.Task[None]]:
        """Wait up to ``grace`` seconds for active jobs (less if forced); returns
        the slots still running."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        forced = asyncio.ensure_future(self._force.wait())
        try:
            pending: set[Any] = set(self._slots.tasks)
            while pending and not self._force.is_set():
                left = deadline - loop.time()
                if left <= 0:
                    break
                _, pending = await asyncio.wait(pending | {forced}, timeout=left,
                                                return_when=asyncio.FIRST_COMPLETED)
                pending.discard(forced)
            return {task for task in self._slots.tasks if not task.done()}
        finally:
            forced.cancel()

    def run(self, burst: bool = False) -> None:
        """Run until SIGINT or SIGTERM, then shut down gracefully (a second signal
        forces it); with ``burst``, until no job is waiting, active or due.

        Blocks. While Redis cannot be reached at start it waits and retries
        with backoff. Inside a running event loop it raises
        ``ConfigurationError``: use ``await worker.start()`` or ``async with``.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise ConfigurationError(
                "Worker.run() blocks and cannot be called inside a running event loop; "
                "use 'await worker.start()' (and 'await worker.close()') or "
                "'async with Worker(...) as worker:' instead")
        if burst:
            self._fetch.burst = True
        asyncio.run(run_until_signal(self))

    def rate_limit(self, duration: Duration) -> Any:
        """Stop every worker of this queue taking jobs for ``duration`` seconds.

        Raise ``RateLimitError`` afterwards from the processor to hand the
        current job back without using an attempt. Awaitable when called on
        the event loop (``await worker.rate_limit(5)`` in an async processor);
        a plain call from a ``def`` processor's thread.
        """
        ms = duration_ms(duration, "duration", allow_zero=False)
        try:
            in_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            in_loop = False
        sync = self._conns.sync
        if in_loop or sync is None:
            return self.client.set(self.keys.limiter, 2**53 - 1, px=ms)
        sync.set(self.keys.limiter, 2**53 - 1, px=ms)
        return None

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Worker {self.prefix}:{self.name} concurrency={self.concurrency}>"

    # --- internals ---------------------------------------------------------------

    @property
    def _fast(self) -> Any:
        """The pipelined connection (None before start or when not possible)."""
        return self._conns.fast

    def _client_name(self) -> str:
        """BullMQ's worker connection name: ``<prefix>:<base64(queue)>[:w:<name>]``."""
        encoded = base64.b64encode(self.name.encode()).decode()
        suffix = f":w:{self.worker_name}" if self.worker_name else ""
        return f"{self.prefix}:{encoded}{suffix}"

    def _target(self) -> Callable[[Job], Any]:
        return self._processor if self._processor is not None else self.process

    async def _run(self, plan: Plan[Any]) -> Any:
        return await run_async(self._conns.fast or self._conns.client, plan)

    async def _run_blocking(self, plan: Plan[Any]) -> Any:
        return await run_async(self._conns.client, plan)

    def _run_sync(self, plan: Plan[Any]) -> Any:
        assert self._conns.sync is not None
        return run_sync(self._conns.sync, plan)

    def _on_progress(self, job: Job, value: Any) -> None:
        self._events.emit("progress", job, value)

    def _on_progress_threadsafe(self, job: Job, value: Any) -> None:
        self._events.emit_threadsafe("progress", job, value)

    def _fetch_params(self, n: int) -> dict[str, Any]:
        self._fetch_seq += 1
        params: dict[str, Any] = {"token": f"{self.id}:{self._fetch_seq}", "lockMs": self.lock_ms,
                                  "n": n, "wname": self.worker_name,
                                  "me": self.clock.max_events}
        if self.options.limiter is not None:
            params["lmax"], params["ldur"] = self.options.limiter
        return params
