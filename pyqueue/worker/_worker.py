"""``Worker``: the public class that assembles the worker's parts (fetch loop, slots, executors,
finish batcher, maintenance thread, events and hooks).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import _ops, _ops_worker
from .. import backoff as _backoff
from .._cluster import check_cluster_queue
from .._keys import QueueKeys, validate_prefix, validate_queue_name
from .._runner import run_async, run_sync
from ..connection import AsyncClient, async_client
from ..errors import ConfigurationError, InvalidJobOptionsError
from ..options import Duration, duration_ms
from ._connections import Connections
from ._events import HookSet, LocalEvents, WorkerEvent
from ._executors import Processor
from ._gate import FetchGate
from ._joblog import JobLogHook
from ._options import check_target, validate_options
from ._report import LogThrottle, Reporter
from ._runtime import Identity, Runtime
from ._signals import run_blocking
from .hooks import WorkerHooks

logger = logging.getLogger("pyqueue.worker")


class Worker:
    """Processes jobs of one queue.

    Pass an ``async def`` processor taking an ``AsyncJob`` or a plain ``def``
    one taking a ``Job``, or subclass and override :meth:`process`. Its return value (JSON) becomes
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
    (one log line per finished job on ``pyqueue.worker``, rate-limited),
    ``metrics`` (``{"max_data_points": n}``: keep BullMQ's per-minute
    completed/failed counts, read by ``Queue.get_metrics`` and Bull Board;
    counted in the finish script, no extra round trip).
    """

    def __init__(
        self,
        name: str,
        processor: Processor | None = None,
        *,
        connection: str | AsyncClient | None = None,
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
        metrics: Mapping[str, Any] | None = None,
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
            drain_delay=drain_delay, execution=execution, metrics=metrics)
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
        self.clock = _ops.Clock(meta_key=self.keys.meta, register_first=True)
        self._is_async = check_target(self._target(), execution)
        self._events = LocalEvents(self.name)
        all_hooks = list(hooks)
        if log_jobs:
            all_hooks.append(JobLogHook(self.name, now_ms=self.clock.now_ms))
        self._hooks = HookSet(self.name, all_hooks)
        client, owns_client = async_client(connection)
        check_cluster_queue(client, owns_client, self.prefix, self.name)
        self._conns = Connections(client, owns_client, self.keys.meta)
        self._rt = Runtime(Identity(self.name, self.prefix, self.keys, self.id, worker_name),
                           self.clock, opts, self._conns, self._events, self._hooks,
                           Reporter(self.name, self._events, LogThrottle()), self._target(),
                           self._is_async)
        self._status = self._rt.status
        self._starting: asyncio.Future[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._closing = False
        self._closed = asyncio.Event()
        self._force = asyncio.Event()
        self._running = False
        self._started_at: float | None = None
        if autorun:
            self._autostart_on_running_loop()

    # --- public API ----------------------------------------------------------------

    async def process(self, job: Any) -> Any:
        """Process one job; override in a subclass (``async def process(self, job:
        AsyncJob)`` or ``def process(self, job: Job)``), or pass ``processor=``."""
        raise NotImplementedError  # pragma: no cover - replaced by the processor

    def on(self, event: WorkerEvent, callback: Callable[..., Any]) -> Worker:
        """Call ``callback`` on a local event: active, progress, completed, failed,
        stalled, error, drained, closed (and lock_lost). Returns the worker."""
        self._events.add(event, callback)
        return self

    def add_hooks(self, *hooks: WorkerHooks) -> Worker:
        """Add :class:`WorkerHooks` to a worker that has not started (for tools that
        get a ready-made worker, such as ``pyqueue worker --metrics-port``)."""
        if self._running or self._starting is not None:
            raise ConfigurationError("add_hooks() must be called before the worker starts")
        self._hooks.add(hooks)
        return self

    @property
    def client(self) -> AsyncClient:
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
        return len(self._rt.slots.tokens)

    def health(self) -> dict[str, Any]:
        """Whether this worker is actually consuming, not only whether Redis answers.

        ``consuming`` is true while the worker runs and its main loop has
        completed a fetch or a blocking wait for jobs within the last
        ``drain_delay + 10`` seconds (an idle worker blocked on an empty queue
        is healthy; one stuck reconnecting is not). Also: ``state``
        (idle, running, reconnecting, closing, closed), ``last_fetch_at``
        (epoch seconds of the last fetch that returned), ``active``,
        ``jobs_processed``, ``worker_id``, ``concurrency``, ``started_at`` (epoch
        seconds, None before start).
        """
        status = self._status
        return {"worker_id": self.id, "queue": self.name, "state": status.state,
                "consuming": status.consuming(self._running, self.drain_delay),
                "last_fetch_at": status.last_fetch_at, "active": self.active_count,
                "concurrency": self.concurrency, "jobs_processed": status.jobs_processed,
                "started_at": self._started_at}

    async def start(self, burst: bool = False) -> None:
        """Start consuming in the background (returns once started). Calls that
        overlap (autorun and ``async with``) share one start; a start that
        failed (Redis unreachable) may be tried again. With ``burst`` the worker
        closes itself once no job is waiting, active, prioritized or due."""
        if self._closing:
            return
        if burst:
            self._rt.fetch.burst = True
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
            self._starting.add_done_callback(self._start_done)
        await asyncio.shield(self._starting)

    def _start_done(self, future: asyncio.Future[None]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._starting = None  # let a later start() try again

    async def _start(self) -> None:
        self._events.loop = asyncio.get_running_loop()
        await self._conns.check_eviction_policy(self.name, self.require_noeviction)
        self._running = True
        self._started_at = time.time()
        await self._rt.start(client_name=self._client_name(), pipelined=self.pipelined,
                             cancel_poll=self.cancel_poll_interval, health=self.health,
                             on_idle=self._burst_done)
        if self._hooks.on_worker_start:
            self._hooks.call(self._hooks.on_worker_start, self)

    def _burst_done(self) -> None:
        self._stopping = asyncio.ensure_future(self.close())

    def _autostart_on_running_loop(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: run() or start() will
        self._autostart = loop.create_task(self.start())
        self._autostart.add_done_callback(self._autostart_done)

    def _autostart_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self._events.emit("error", exc)
            logger.error("worker %s: could not start: %s", self.name, exc)

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
        await self._rt.stop(0 if force else self.shutdown_grace, self._force)
        self._running = False
        self._closed.set()
        self._events.emit("closed")
        if self._hooks.on_worker_stop:
            self._hooks.call(self._hooks.on_worker_stop, self)

    def run(self, burst: bool = False) -> None:
        """Run until SIGINT or SIGTERM, then shut down gracefully (a second signal
        forces it); with ``burst``, until no job is waiting, active or due.

        Blocks. While Redis cannot be reached at start it waits and retries
        with backoff. Inside a running event loop it raises
        ``ConfigurationError``: use ``await worker.start()`` or ``async with``.
        """
        run_blocking(self, burst)

    def rate_limit(self, duration: Duration) -> Any:
        """Stop every worker of this queue taking jobs for ``duration`` seconds.

        Raise ``RateLimitError`` afterwards from the processor to hand the
        current job back without using an attempt. Awaitable when called on
        the event loop (``await worker.rate_limit(5)`` in an async processor);
        a plain call from a ``def`` processor's thread.
        """
        ms = duration_ms(duration, "duration", allow_zero=False)
        try:
            in_loop = asyncio.get_running_loop() is self._rt.loop
        except RuntimeError:
            in_loop = False
        sync = self._conns.sync
        plan = _ops_worker.pause_fetching(self.keys, ms)
        if in_loop or sync is None:
            return run_async(self.client, plan)
        run_sync(sync, plan)
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
        return self.keys.connection_name(self.worker_name)

    def _target(self) -> Processor:
        return self._processor if self._processor is not None else self.process

    def _use_gate(self, gate: FetchGate) -> None:
        """Consult ``gate`` (``worker/_gate.py``) around every fetch; call before start."""
        self._rt.set_gate(gate)

    @property
    def _loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the worker runs on (None before start)."""
        return self._rt.loop
