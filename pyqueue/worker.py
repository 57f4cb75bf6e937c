"""``Worker``: takes jobs from a queue and runs a processor on each.

The worker is asyncio. Its main loop fills free slots with one fetch call
(several jobs per round trip) and otherwise blocks on the queue's wake-up
marker (``BZPOPMIN``) on a connection of its own. A slot that finishes a job
asks for the next one in the same call that finishes it (fetch-next), so a
busy worker costs one round trip per job.

Plain ``def`` processors run in a thread pool, so they cannot block the loop.
Locks are renewed, and the stalled-job check runs, from a separate thread
with its own connection: a processor that hogs the event loop cannot starve
the renewal and lose its lock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import functools
import inspect
import json
import logging
import os
import random
import signal
import socket
import threading
import time
import traceback
import uuid
from asyncio import Future
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import redis.asyncio
import redis.exceptions as rexc

from . import _ops, _schedule
from . import _scripts as S
from . import backoff as _backoff
from ._keys import QueueKeys, validate_prefix, validate_queue_name
from ._plan import (
    Command,
    Plan,
    needs_reconnect,
    raise_error_reply,
    run_async,
    run_sync,
    translate,
)
from ._procpool import ProcessorError, ProcessPool, connection_settings, import_path
from ._resp import PipelinedConnection, options_from
from .connection import SOCKET_TIMEOUT, async_client, blocking_async_client, sync_twin
from .errors import (
    DelayedError,
    InvalidJobOptionsError,
    JobCancelledError,
    JobLockError,
    JobTimeoutError,
    PyQueueError,
    RateLimitError,
    RedisConnectionError,
    RedisStateError,
    UnrecoverableError,
)
from .job import Binding, Job
from .options import (
    Duration,
    Retention,
    duration_ms,
    encode_json,
    parse_retention,
    retention_from_opts,
)

logger = logging.getLogger("pyqueue.worker")

Processor = Callable[[Job], Any]
NextJob = tuple[str, str, dict[str, str]] | None
#: Finishes waiting for their script call: (item sent to moveToFinished,
#: future of (code, next job) for the slot that finished it).
Finishes = list[tuple[dict[str, Any], Future[tuple[int, NextJob]]]]
EVENTS = ("active", "progress", "completed", "failed", "stalled", "error", "drained",
          "closed", "lock_lost")
STACKTRACE_LIMIT = 10
#: Seconds past a BZPOPMIN timeout after which its connection counts as hung.
BLOCK_MARGIN = 5.0
#: A worker at full concurrency keeps about this many finish calls in flight.
FINISH_CHUNKS = 2
#: Seconds between heartbeats published for ``pyqueue health``.
HEARTBEAT_SECONDS = 5.0


class _LogThrottle:
    """At most one log line per ``key`` per ``interval`` seconds (no error floods)."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.last: dict[str, float] = {}

    def ok(self, key: str) -> bool:
        now = time.monotonic()
        if now - self.last.get(key, -1e9) >= self.interval:
            self.last[key] = now
            return True
        return False


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
    warn), ``autorun`` (start as soon as an event loop runs).
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
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidJobOptionsError(f"concurrency must be an int >= 1, got {concurrency!r}")
        self.concurrency = concurrency
        self._limiter: tuple[int, int] | None = None
        if limiter is not None:
            if not isinstance(limiter, Mapping) or set(limiter) - {"max", "duration"} \
                    or "max" not in limiter or "duration" not in limiter:
                raise InvalidJobOptionsError(
                    f"limiter must be {{'max': n, 'duration': seconds}}, got {limiter!r}"
                )
            lmax = limiter["max"]
            if isinstance(lmax, bool) or not isinstance(lmax, int) or lmax < 1:
                raise InvalidJobOptionsError(f"limiter.max must be an int >= 1, got {lmax!r}")
            self._limiter = (lmax, duration_ms(limiter["duration"], "limiter.duration",
                                               allow_zero=False))
        self.lock_ms = duration_ms(lock_duration, "lock_duration", allow_zero=False)
        self.stalled_ms = duration_ms(stalled_interval, "stalled_interval", allow_zero=False)
        if isinstance(max_stalled_count, bool) or not isinstance(max_stalled_count, int) \
                or max_stalled_count < 0:
            raise InvalidJobOptionsError(
                f"max_stalled_count must be an int >= 0, got {max_stalled_count!r}"
            )
        self.max_stalled_count = max_stalled_count
        self._keep_complete = (parse_retention(remove_on_complete, "remove_on_complete")[1]
                               if remove_on_complete is not None else Retention())
        self._keep_fail = (parse_retention(remove_on_fail, "remove_on_fail")[1]
                           if remove_on_fail is not None else Retention())
        if backoff_strategy is not None and not callable(backoff_strategy):
            raise InvalidJobOptionsError("backoff_strategy must be callable")
        self._backoff_strategy = backoff_strategy
        self.shutdown_grace = duration_ms(shutdown_grace, "shutdown_grace") / 1000
        self.drain_delay = max(duration_ms(drain_delay, "drain_delay", allow_zero=False),
                               10) / 1000
        self.worker_name = worker_name
        self.pipelined = pipelined
        if execution not in ("thread", "process"):
            raise InvalidJobOptionsError(
                f"execution must be 'thread' or 'process', got {execution!r}")
        self.execution = execution
        self._pool: ProcessPool | None = None
        self.cancel_poll_interval = 0.5
        self.require_noeviction = require_noeviction
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

        self.client, self._owns_client = async_client(connection)
        self._blocking: redis.asyncio.Redis | None = None
        self._fast: PipelinedConnection | None = None
        self._sync_client: redis.Redis | None = None
        self.clock = _ops.Clock(meta_key=self.keys.meta)
        self._is_async = inspect.iscoroutinefunction(self._target())
        if execution == "process":
            if self._is_async:
                raise InvalidJobOptionsError(
                    "execution='process' runs def processors; an async processor runs on "
                    "the event loop")
            import_path(self._target())  # fail now, not at the first job

        self._listeners: dict[str, list[Callable[..., Any]]] = {e: [] for e in EVENTS}
        self._tokens: dict[str, str] = {}       # job id -> lock token (shared with thread)
        self._tokens_lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._current: dict[str, tuple[Job, asyncio.Task[Any]]] = {}
        self._finishes: Finishes = []
        self._finish_scheduled = False
        #: Finishes per script call: a chunk is sent as soon as it is full, so
        #: a few are in flight at once (see _flush_finishes).
        self._finish_chunk = max(1, -(-self.concurrency // FINISH_CHUNKS))
        self._senders: set[asyncio.Future[None]] = set()
        self._fetch_seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._keeper: _LockKeeper | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()
        self._force = asyncio.Event()
        self._running = False
        self._had_jobs = False
        self._throttle = _LogThrottle()
        self._async_binding = Binding(self.keys, self.clock, self._run, is_async=True,
                                      on_progress=self._on_progress,
                                      run_blocking=self._run_blocking)
        self._sync_binding: Binding | None = None
        self.last_fetch_at: float | None = None
        self._last_ok: float | None = None  # monotonic: last fetch or block that worked
        self.state = "idle"  # idle | running | reconnecting | closing | closed
        self.jobs_processed = 0
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

    def on(self, event: str, callback: Callable[..., Any]) -> Worker:
        """Call ``callback`` on a local event: active, progress, completed, failed,
        stalled, error, drained, closed (and lock_lost). Returns the worker."""
        if event not in self._listeners:
            raise InvalidJobOptionsError(f"unknown worker event {event!r}; known: {EVENTS}")
        self._listeners[event].append(callback)
        return self

    @property
    def running(self) -> bool:
        """Whether the worker has started and not closed."""
        return self._running

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
        fresh = self._last_ok is not None and \
            time.monotonic() - self._last_ok <= self.drain_delay + BLOCK_MARGIN * 2
        return {
            "worker_id": self.id,
            "queue": self.name,
            "state": self.state,
            "consuming": bool(self._running and self.state == "running" and fresh),
            "last_fetch_at": self.last_fetch_at,
            "active": self.active_count,
            "jobs_processed": self.jobs_processed,
        }

    @property
    def active_count(self) -> int:
        """Jobs being processed by this worker now."""
        return len(self._tokens)

    async def start(self) -> None:
        """Start consuming in the background (returns once started). Calls that
        overlap (autorun and ``async with``) share one start."""
        if self._closing:
            return
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._check_eviction_policy()
        self._running = True
        self.state = "running"
        self._blocking = blocking_async_client(self.client, client_name=self._client_name())
        options = options_from(self.client) if self.pipelined else None
        if options is not None:
            self._fast = PipelinedConnection(options, timeout=SOCKET_TIMEOUT)
        self._sync_client = sync_twin(self.client)
        self._sync_binding = Binding(self.keys, self.clock, self._run_sync, is_async=False,
                                     on_progress=self._on_progress_threadsafe)
        if self.execution == "process":
            pool = self.client.connection_pool
            kind = {"UnixDomainSocketConnection": "unix", "SSLConnection": "ssl"}.get(
                pool.connection_class.__name__, "tcp")
            self._pool = ProcessPool(self._target(), self.concurrency, self.prefix, self.name,
                                     connection_settings(dict(pool.connection_kwargs), kind))
        elif not self._is_async:
            self._executor = ThreadPoolExecutor(max_workers=self.concurrency,
                                                thread_name_prefix=f"pyqueue-{self.name}")
        self._keeper = _LockKeeper(self)
        self._keeper.start()
        self._main = asyncio.create_task(self._main_loop(), name=f"pyqueue-worker-{self.name}")

    def _autostart_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self._emit("error", exc)
            logger.error("worker %s: could not start: %s", self.name, exc)

    async def _check_eviction_policy(self) -> None:
        """Warn (or refuse, with ``require_noeviction``) when Redis may evict keys:
        an evicted job hash or lock is a lost or duplicated job."""
        try:
            reply = await self.client.config_get("maxmemory-policy")
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
        self.state = "closing"
        self._wake.set()
        if self._main is not None:
            self._main.cancel()
            await asyncio.gather(self._main, return_exceptions=True)
        if self._tasks:
            pending = await self._wait_active(0 if force else self.shutdown_grace)
            if pending:
                await self._release_active()
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        if self._keeper is not None:
            self._keeper.stop()
            await asyncio.get_running_loop().run_in_executor(None, self._keeper.join, 5)
            with contextlib.suppress(Exception):
                await self.client.zrem(self.keys.key("pq:workers"), self.id)
                await self.client.hdel(self.keys.key("pq:workerinfo"), self.id)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._pool is not None:
            self._pool.close()
        if self._blocking is not None:
            await self._blocking.aclose()
        if self._fast is not None:
            await self._fast.aclose()
        if self._sync_client is not None:
            self._sync_client.close()
        if self._owns_client:
            await self.client.aclose()
        self._running = False
        self.state = "closed"
        self._closed.set()
        self._emit("closed")

    async def _wait_active(self, grace: float) -> set[asyncio.Task[None]]:
        """Wait up to ``grace`` seconds for active jobs (less if forced); returns
        the slots still running."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        forced = asyncio.ensure_future(self._force.wait())
        try:
            pending: set[Any] = set(self._tasks)
            while pending and not self._force.is_set():
                left = deadline - loop.time()
                if left <= 0:
                    break
                _, pending = await asyncio.wait(pending | {forced}, timeout=left,
                                                return_when=asyncio.FIRST_COMPLETED)
                pending.discard(forced)
            return {task for task in self._tasks if not task.done()}
        finally:
            forced.cancel()

    def run(self) -> None:
        """Run until SIGINT or SIGTERM, then shut down gracefully (a second signal
        forces it). Blocks; for asyncio programs use ``start()``/``close()``."""
        asyncio.run(self._run_until_signal())

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
        if in_loop or self._sync_client is None:
            return self.client.set(self.keys.limiter, 2**53 - 1, px=ms)
        self._sync_client.set(self.keys.limiter, 2**53 - 1, px=ms)
        return None

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Worker {self.prefix}:{self.name} concurrency={self.concurrency}>"

    # --- internals ---------------------------------------------------------------

    def _client_name(self) -> str:
        """BullMQ's worker connection name: ``<prefix>:<base64(queue)>[:w:<name>]``."""
        encoded = base64.b64encode(self.name.encode()).decode()
        suffix = f":w:{self.worker_name}" if self.worker_name else ""
        return f"{self.prefix}:{encoded}{suffix}"

    def _target(self) -> Callable[[Job], Any]:
        return self._processor if self._processor is not None else self.process

    async def _run(self, plan: Plan[Any]) -> Any:
        return await run_async(self._fast or self.client, plan)

    async def _run_blocking(self, plan: Plan[Any]) -> Any:
        return await run_async(self.client, plan)

    def _run_sync(self, plan: Plan[Any]) -> Any:
        assert self._sync_client is not None
        return run_sync(self._sync_client, plan)

    def _emit(self, event: str, *args: Any) -> None:
        for callback in self._listeners.get(event, ()):
            try:
                result = callback(*args)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(self._callback_done)
            except Exception:
                logger.exception("worker %s: %r listener raised", self.name, event)

    def _callback_done(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("worker %s: async listener raised: %r", self.name, task.exception())

    def _loop_call(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def _emit_threadsafe(self, event: str, *args: Any) -> None:
        self._loop_call(self._emit, event, *args)

    def _on_progress(self, job: Job, value: Any) -> None:
        self._emit("progress", job, value)

    def _on_progress_threadsafe(self, job: Job, value: Any) -> None:
        self._emit_threadsafe("progress", job, value)

    def _report(self, key: str, exc: BaseException) -> None:
        self._emit("error", exc)
        if self._throttle.ok(key):
            logger.warning("worker %s: %s: %s", self.name, key, exc)

    async def _run_until_signal(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        signals = 0
        forced: list[asyncio.Future[None]] = []

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                stop.set()
            else:
                forced.append(asyncio.ensure_future(self.close(force=True)))

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread
                pass
        try:
            await self.start()
            waiter = asyncio.ensure_future(stop.wait())
            closed = asyncio.ensure_future(self._closed.wait())
            await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            closed.cancel()
            await self.close()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _fetch_params(self, n: int) -> dict[str, Any]:
        self._fetch_seq += 1
        params: dict[str, Any] = {"token": f"{self.id}:{self._fetch_seq}", "lockMs": self.lock_ms,
                                  "n": n, "wname": self.worker_name,
                                  "me": self.clock.max_events}
        if self._limiter is not None:
            params["lmax"], params["ldur"] = self._limiter
        return params

    def _fetch_plan(self, n: int) -> Plan[Any]:
        yield from self.clock.sync()
        (reply,) = yield [S.call("moveToActive", self.keys, self.clock.now_ms(),
                                 **self._fetch_params(n))]
        return S.decode_fetch(reply)

    async def _main_loop(self) -> None:
        backoff = 0.0
        while not self._closing:
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                status, number, jobs = await self._run(self._fetch_plan(free))
                backoff = 0.0
                self.state = "running"
                self.last_fetch_at = time.time()
                self._last_ok = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must never die: report, back off, go on
                self.state = "reconnecting"
                self._report("fetch failed", exc)
                await self._maybe_reconnect(exc)
                backoff = min(max(backoff * 2, 0.1), 5.0)
                await self._sleep(backoff * random.uniform(0.5, 1.0))
                continue
            for job_id, token, fields in jobs:
                self._spawn(job_id, token, fields)
            if jobs:
                self._had_jobs = True
                continue
            if self._had_jobs and not self._tasks:
                self._had_jobs = False
                self._emit("drained")
            if status == S.FETCH_RATE_LIMITED:
                await self._sleep(number / 1000)
                continue
            timeout = self.drain_delay
            if status == S.FETCH_OK and number > 0:
                timeout = min(timeout, max((number - self.clock.now_ms()) / 1000, 0.0))
            if timeout > 0:
                await self._block(timeout)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _block(self, timeout: float) -> None:
        """Wait for the marker (jobs ready) for at most ``timeout`` seconds."""
        assert self._blocking is not None
        timeout = max(timeout, 0.01)
        try:
            # The blocking connection has no read timeout (the wait is the
            # point), so a hung or blackholed connection is caught here: past
            # the block timeout plus a margin, the command is cancelled, which
            # drops that connection, and the next call reconnects.
            await asyncio.wait_for(self._blocking.bzpopmin(self.keys.marker, timeout=timeout),
                                   timeout + BLOCK_MARGIN)
            self._last_ok = time.monotonic()
        except asyncio.CancelledError:
            raise
        except (redis.exceptions.RedisError, OSError, asyncio.TimeoutError) as exc:
            self.state = "reconnecting"
            self._report("blocking wait failed", exc)
            await self._maybe_reconnect(exc)
            await self._sleep(0.5)

    async def _maybe_reconnect(self, exc: BaseException) -> None:
        """After a failover the old primary answers READONLY (or unblocks us with
        UNBLOCKED): drop every connection so the next command reaches the new one."""
        if not needs_reconnect(exc):
            return
        logger.warning("worker %s: Redis is no longer a writable primary; reconnecting",
                       self.name)
        if self._fast is not None:
            await self._fast.reset()
        for client in (self.client, self._blocking):
            if client is not None:
                await client.connection_pool.disconnect()
        if self._sync_client is not None:
            self._sync_client.connection_pool.disconnect()

    def _spawn(self, job_id: str, token: str, fields: dict[str, str]) -> None:
        with self._tokens_lock:
            self._tokens[job_id] = token
        task = asyncio.create_task(self._slot(job_id, token, fields))
        self._tasks.add(task)
        task.add_done_callback(self._slot_done)

    def _slot_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            self._report("slot crashed", task.exception())  # type: ignore[arg-type]

    async def _slot(self, job_id: str, token: str, fields: dict[str, str]) -> None:
        """Process a job, then the jobs handed out with each finish (fetch-next)."""
        current: tuple[str, str, dict[str, str]] | None = (job_id, token, fields)
        while current is not None:
            job_id, token, fields = current
            try:
                current = await self._process_job(job_id, token, fields)
            finally:
                with self._tokens_lock:
                    if self._tokens.get(job_id) == token:
                        del self._tokens[job_id]
            if current is not None:
                with self._tokens_lock:
                    self._tokens[current[0]] = current[1]

    async def _process_job(self, job_id: str, token: str,
                           fields: dict[str, str]) -> tuple[str, str, dict[str, str]] | None:
        binding = self._async_binding if self._is_async else self._sync_binding
        assert binding is not None
        job = Job(binding, job_id, fields, token)
        if job.corruption is not None:
            return await self._finish_failed(job, UnrecoverableError(job.corruption), final=True)
        if not self._is_async:
            job.cancel_requested  # noqa: B018 - created here, on the loop, before any thread reads it
        if job.deferred_failure:
            return await self._finish_failed(job, UnrecoverableError(job.deferred_failure),
                                             final=True)
        if job.scheduler_id is not None:
            await self._schedule_next(job)
        self._emit("active", job)
        task = asyncio.current_task()
        assert task is not None
        self._current[job.id] = (job, task)
        try:
            result = await self._invoke(job)
            value = "null" if result is None else encode_json(result, "return value")
        except asyncio.CancelledError:
            if job.cancel_reason is None:
                raise  # shutdown, not a cancellation of this job
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            return await self._finish_cancelled(job)
        except DelayedError:
            await self._after_delayed(job)
            return None
        except RateLimitError:
            await self._hand_back(job, undo_start=True)
            return None
        except UnrecoverableError as exc:
            return await self._finish_failed(job, exc, final=True)
        except JobCancelledError:
            if job.cancel_reason is None:
                job.cancel_reason = "cancelled"
            return await self._finish_cancelled(job)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            if job.cancel_reason is not None:  # it reacted to the cancellation by raising
                return await self._finish_cancelled(job)
            return await self._finish_failed(job, exc, final=False)
        finally:
            self._current.pop(job.id, None)
        if job.cancel_reason is not None:  # a def processor finished regardless
            return await self._finish_cancelled(job)
        return await self._finish_completed(job, value, result)

    async def _schedule_next(self, job: Job) -> None:
        """Create the scheduler's next iteration before running this one, so a
        failing iteration cannot stop its schedule."""
        assert job.scheduler_id is not None
        try:
            await self._run(_schedule.next_iteration_plan(self.keys, self.clock, job.id,
                                                          job.scheduler_id, job.opts))
        except (PyQueueError, OSError, ValueError) as exc:
            self._report("scheduling the next iteration failed", exc)

    async def _invoke(self, job: Job) -> Any:
        target = self._target()
        timeout = job.timeout
        if self._is_async:
            call: Awaitable[Any] = target(job)
        elif self._pool is not None:
            child = await self._pool.acquire()  # not timed: a child may be starting
            call = self._pool.run(child, job.id, job.fields, job.lock_token)
        else:
            assert self._executor is not None
            ctx = contextvars.copy_context()
            call = asyncio.get_running_loop().run_in_executor(self._executor, ctx.run,
                                                              target, job)
        if timeout is None:
            result = await call
        else:
            try:
                result = await asyncio.wait_for(call, timeout)
            except asyncio.TimeoutError:
                raise JobTimeoutError(f"job {job.id} timed out after {timeout} s") from None
        if result is not None and inspect.isawaitable(result):
            result = await result
        return result

    async def _finish_cancelled(self, job: Job) -> NextJob:
        """Fail (or remove) a cancelled job, without retry."""
        reason = job.cancel_reason or "cancelled"
        exc = JobCancelledError(reason)
        trace = self._stacktrace(job, exc)
        keep = Retention(count=0) if job.cancel_remove else self._retention(job, False)
        accepted, nxt = await self._finish(job, target="failed", value=reason,
                                           stacktrace=trace, keepCount=keep.count,
                                           keepAgeMs=keep.age_ms, exhausted=False)
        if accepted:
            job.attempts_made += 1
            job.failed_reason = reason
            self._emit("failed", job, exc)
        return nxt

    def _cancel_local(self, job_id: str, reason: str, remove: bool) -> None:
        """A cancellation request for a job this worker runs (on the loop)."""
        entry = self._current.get(job_id)
        if entry is None:
            return
        job, task = entry
        if job.cancel_reason is not None:
            return
        job.cancel_reason = reason
        job.cancel_remove = remove
        job.cancel_requested.set()
        if self._is_async or self._pool is not None:
            task.cancel()  # a process-mode job's child is killed

    def _retention(self, job: Job, completed: bool) -> Retention:
        stored = retention_from_opts(job.opts.get("removeOnComplete" if completed
                                                  else "removeOnFail"))
        if stored is not None:
            return stored
        return self._keep_complete if completed else self._keep_fail

    def _release_token(self, job: Job) -> None:
        """Stop renewing the job's lock: its finish (or hand-back) is being sent."""
        with self._tokens_lock:
            if self._tokens.get(job.id) == job.lock_token:
                del self._tokens[job.id]

    def _finish_command(self, items: list[dict[str, Any]]) -> tuple[Command, bool]:
        """The moveToFinished call for ``items`` (with a fetch of as many next
        jobs unless closing); the clock must be fresh."""
        fetch = not self._closing
        params: dict[str, Any] = {"items": items}
        if fetch:
            params.update(fetch=True, **self._fetch_params(len(items)))
        params["me"] = self.clock.max_events
        return S.call("moveToFinished", self.keys, self.clock.now_ms(), **params), fetch

    def _finish_plan(self, items: list[dict[str, Any]]) -> Plan[tuple[list[int], Any]]:
        yield from self.clock.sync()
        command, fetch = self._finish_command(items)
        (reply,) = yield [command]
        return self._decode_finish(reply, fetch)

    @staticmethod
    def _decode_finish(reply: Any, fetch: bool) -> tuple[list[int], Any]:
        codes = [int(code) for code in reply[0]]
        return codes, (S.decode_fetch(reply[1]) if fetch else None)

    async def _finish(self, job: Job, **params: Any) -> tuple[bool, NextJob]:
        """Finish ``job`` (and fetch the next one); returns (accepted, next job).

        Finishes go to Redis in chunks, one script call each: a chunk is sent
        when it holds ``_finish_chunk`` finishes or when the event-loop turn
        ends (see :meth:`_flush_finishes`). ``accepted`` is False when Redis
        refused the write (the lock was lost: another worker owns the job
        now) or Redis could not be reached (the job stays active and the
        stalled check hands it out again).
        """
        self._release_token(job)
        future: asyncio.Future[tuple[int, NextJob]] = \
            asyncio.get_running_loop().create_future()
        self._finishes.append(({"id": job.id, "lockToken": job.lock_token, **params}, future))
        if len(self._finishes) >= self._finish_chunk:
            self._flush_finishes()  # Redis starts on this chunk while the rest run
        elif not self._finish_scheduled:
            self._finish_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_finishes)
        try:
            code, nxt = await future
        except (RedisConnectionError, PyQueueError, OSError) as exc:
            self._report("finish failed", exc)
            await self._maybe_reconnect(exc)
            return False, None
        if code < 0:
            try:
                S.check(code, op="finish", job_id=job.id)
            except JobLockError as exc:
                self._emit("lock_lost", job, exc)
                self._report("lock lost", exc)
            except PyQueueError as exc:
                self._report("finish refused", exc)
            return False, None
        self.jobs_processed += 1
        return True, nxt

    def _flush_finishes(self) -> None:
        self._finish_scheduled = False
        batch, self._finishes = self._finishes, []
        if not batch:
            return
        # The call is written now (not when this loop iteration ends), so that
        # with many slots finishing at once Redis works on one chunk while
        # Python runs the next: the two overlap instead of taking turns. Its
        # reply is handed out by a callback: no task to wake in between.
        fast = self._fast
        if fast is not None and self.clock.fresh():
            command, fetch = self._finish_command([item for item, _ in batch])
            sent = fast.send_one(command, immediate=True)
            if sent is not None:
                sent.add_done_callback(functools.partial(self._finish_replied, batch, fetch))
                return
        self._finish_in_task(batch)

    def _finish_in_task(self, batch: Finishes) -> None:
        """The general path: run the finish plan (clock sync, connecting,
        reloading a flushed script) in a task."""
        task = asyncio.ensure_future(self._send_finishes(batch))
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    def _finish_replied(self, batch: Finishes, fetch: bool, sent: Future[Any]) -> None:
        try:
            reply = raise_error_reply(sent.result())
            if isinstance(reply, rexc.NoScriptError):  # not run: the plan reloads it
                self._finish_in_task(batch)
                return
            result = self._decode_finish(reply, fetch)
        except asyncio.CancelledError:  # no slot may wait forever
            self._fail_finishes(batch, RedisConnectionError("the finish call was cancelled"))
            return
        except Exception as exc:  # the connection failed, or an error reply
            error = translate(exc) if isinstance(exc, rexc.RedisError) else exc
            self._fail_finishes(batch, error)
            return
        self._hand_out(batch, result)

    @staticmethod
    def _fail_finishes(batch: Finishes, exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    async def _send_finishes(self, batch: Finishes) -> None:
        """One script call for a batch of finishes, and as many next jobs."""
        try:
            result = await self._run(self._finish_plan([item for item, _ in batch]))
        except Exception as exc:
            self._fail_finishes(batch, exc)
            return
        self._hand_out(batch, result)

    def _hand_out(self, batch: Finishes, result: tuple[list[int], Any]) -> None:
        """Give each finishing slot its outcome and its next job."""
        codes, fetched = result
        jobs = list(fetched[2]) if fetched is not None else []
        if jobs:
            self.last_fetch_at = time.time()
            self._had_jobs = True
        for (_, future), code in zip(batch, codes, strict=True):
            nxt = jobs.pop(0) if code == 0 and jobs else None
            if future.done():  # the slot is gone (shutdown): run its job elsewhere
                if nxt is not None:
                    jobs.insert(0, nxt)
                continue
            future.set_result((code, nxt))
        for extra in jobs:
            self._spawn(*extra)

    async def _finish_completed(self, job: Job, value: str,
                                result: Any) -> tuple[str, str, dict[str, str]] | None:
        keep = self._retention(job, True)
        accepted, nxt = await self._finish(job, target="completed", value=value,
                                           keepCount=keep.count, keepAgeMs=keep.age_ms)
        if accepted:
            job.return_value = result
            job.attempts_made += 1
            self._emit("completed", job, result)
        return nxt

    def _reason(self, exc: BaseException) -> str:
        text = str(exc)
        return text if text else type(exc).__name__

    def _stacktrace(self, job: Job, exc: BaseException) -> str:
        traces = list(job.stacktrace)
        if isinstance(exc, ProcessorError):
            traces.append(exc.remote_traceback)
        else:
            traces.append("".join(traceback.format_exception(type(exc), exc,
                                                             exc.__traceback__)))
        return encode_json(traces[-STACKTRACE_LIMIT:], "stacktrace")

    async def _finish_failed(self, job: Job, exc: BaseException,
                             final: bool) -> tuple[str, str, dict[str, str]] | None:
        made = job.attempts_made + 1
        reason = self._reason(exc)
        trace = self._stacktrace(job, exc)
        delay: int | None = 0
        if not final and made < job.attempts:
            try:
                delay = _backoff.delay_ms(job.opts.get("backoff"), made, exc, job,
                                          self._backoff_strategy)
            except Exception as strategy_exc:
                self._report("backoff strategy raised", strategy_exc)
                delay = None
            if delay is not None:
                due = self.clock.now_ms() + delay if delay > 0 else 0
                if await self._retry(job, due=due, count_attempt=True, reason=reason,
                                     trace=trace):
                    job.attempts_made = made
                    job.failed_reason = reason
                    self._emit("failed", job, exc)
                return None
        keep = self._retention(job, False)
        exhausted = not isinstance(exc, UnrecoverableError) or bool(job.deferred_failure)
        accepted, nxt = await self._finish(job, target="failed", value=reason,
                                           stacktrace=trace, keepCount=keep.count,
                                           keepAgeMs=keep.age_ms,
                                           exhausted=exhausted and made >= job.attempts)
        if accepted:
            job.attempts_made = made
            job.failed_reason = reason
            self._emit("failed", job, exc)
        return nxt

    async def _retry(self, job: Job, *, due: int, count_attempt: bool = False,
                     reason: str | None = None, trace: str | None = None,
                     front: bool = False, undo_start: bool = False) -> bool:
        """Move the job out of active without finishing it; False if refused."""
        plan = _ops.simple("retryJob", self.keys, self.clock, op="retry", job_id=job.id,
                           id=job.id, lockToken=job.lock_token, dueMs=due,
                           countAttempt=count_attempt,
                           reason=reason, stacktrace=trace, front=front, undoStart=undo_start)
        self._release_token(job)
        try:
            await self._run(plan)
        except JobLockError as exc:
            self._emit("lock_lost", job, exc)
            self._report("lock lost", exc)
            return False
        except (RedisConnectionError, PyQueueError, OSError) as exc:
            self._report("retry failed", exc)
            await self._maybe_reconnect(exc)
            return False
        return True

    async def _hand_back(self, job: Job, undo_start: bool) -> None:
        await self._retry(job, due=0, front=True, undo_start=undo_start)

    async def _after_delayed(self, job: Job) -> None:
        if job.lock_token is not None:
            # DelayedError without move_to_delayed(): hand the job back now.
            await self._hand_back(job, undo_start=False)

    async def _release_active(self) -> None:
        """Hand every job still running back to the queue (shutdown)."""
        with self._tokens_lock:
            held = dict(self._tokens)
            self._tokens.clear()
        for job_id, token in held.items():
            plan = _ops.simple("retryJob", self.keys, self.clock, op="release", job_id=job_id,
                               id=job_id, lockToken=token, dueMs=0, front=True, undoStart=True)
            try:
                await self._run(plan)
            except PyQueueError as exc:
                self._report("release failed", exc)

    # Called from the lock keeper thread.
    def _snapshot_tokens(self) -> tuple[list[str], list[str]]:
        with self._tokens_lock:
            ids = list(self._tokens)
            return ids, [self._tokens[i] for i in ids]



class _LockKeeper(threading.Thread):
    """Renews the worker's locks every ``lock_duration / 2`` and runs the stalled
    check every ``stalled_interval``, from its own thread and connection."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(name=f"pyqueue-locks-{worker.name}", daemon=True)
        self.worker = worker
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        worker = self.worker
        renew_every = worker.lock_ms / 2000
        next_renew = time.monotonic() + renew_every
        next_check = time.monotonic()
        next_cancel = time.monotonic()
        next_beat = time.monotonic()
        while not self._stop_event.is_set():
            now = time.monotonic()
            if now >= next_check:
                next_check = now + worker.stalled_ms / 1000
                self._check_stalled()
            if now >= next_renew:
                next_renew = now + renew_every
                self._renew()
            if now >= next_cancel:
                next_cancel = now + worker.cancel_poll_interval
                self._poll_cancellations()
            if now >= next_beat:
                next_beat = now + HEARTBEAT_SECONDS
                self._heartbeat()
            wake = min(next_renew, next_check, next_cancel, next_beat)
            self._stop_event.wait(max(wake - time.monotonic(), 0.005))

    def _heartbeat(self) -> None:
        """Publish this worker's health for ``pyqueue health`` (pq:workers zset,
        score = heartbeat ms; pq:workerinfo hash, id -> JSON)."""
        worker = self.worker
        assert worker._sync_client is not None
        info = json.dumps({**worker.health(), "host": socket.gethostname(), "pid": os.getpid(),
                           "heartbeat": time.time()})
        try:
            pipe = worker._sync_client.pipeline(transaction=False)
            pipe.zadd(worker.keys.key("pq:workers"), {worker.id: int(time.time() * 1000)})
            pipe.hset(worker.keys.key("pq:workerinfo"), worker.id, info)
            pipe.execute()
        except Exception as exc:
            if worker._throttle.ok("heartbeat failed"):
                logger.warning("worker %s: heartbeat failed: %s", worker.name, exc)

    def _poll_cancellations(self) -> None:
        """Hand cancellation requests for this worker's jobs to the event loop."""
        worker = self.worker
        ids, _ = worker._snapshot_tokens()
        if not ids:
            return
        key = worker.keys.key("pq:cancel")
        try:
            assert worker._sync_client is not None
            raw = worker._sync_client.smembers(key)
            wanted = [job_id for job_id in (S.text(m) for m in raw) if job_id in set(ids)]
            for job_id in wanted:
                reason, remove = worker._sync_client.hmget(worker.keys.job(job_id),
                                                           ["pqcx", "pqcxrm"])
                worker._loop_call(worker._cancel_local, job_id,
                                  S.text(reason) if reason else "cancelled", bool(remove))
        except Exception as exc:
            if worker._throttle.ok("cancel poll failed"):
                logger.warning("worker %s: cancellation poll failed: %s", worker.name, exc)

    def _guarded(self, what: str, plan: Plan[Any]) -> Any:
        """Run ``plan`` on the thread's connection; on failure report it (at most
        once per 5 s per kind), reconnect after a failover, and return None."""
        worker = self.worker
        try:
            return worker._run_sync(plan)
        except Exception as exc:
            worker._emit_threadsafe("error", exc)
            if needs_reconnect(exc) and worker._sync_client is not None:
                worker._sync_client.connection_pool.disconnect()
            if worker._throttle.ok(f"{what} failed"):
                logger.warning("worker %s: %s failed: %s", worker.name, what, exc)
            return None

    def _renew(self) -> None:
        worker = self.worker
        ids, tokens = worker._snapshot_tokens()
        if not ids:
            return
        plan = _ops.simple("extendLocks", worker.keys, worker.clock, op="extend_locks",
                           ids=ids, tokens=tokens, lockMs=worker.lock_ms)
        reply = self._guarded("lock renewal", plan)
        if reply is None:
            return
        lost = [S.text(i) for i in reply]
        # A job whose finish was sent meanwhile is no longer held: not a loss.
        held = dict(zip(ids, tokens, strict=True))
        with worker._tokens_lock:
            lost = [job_id for job_id in lost
                    if worker._tokens.get(job_id) == held.get(job_id)]
            for job_id in lost:
                worker._tokens.pop(job_id, None)
        for job_id in lost:
            worker._emit_threadsafe("lock_lost", job_id, None)
            if worker._throttle.ok("lock lost"):
                logger.warning("worker %s: lost the lock on job %s", worker.name, job_id)

    def _check_stalled(self) -> None:
        worker = self.worker
        plan = _ops.simple("moveStalledJobsToWait", worker.keys, worker.clock,
                           op="stalled_check", maxStalled=worker.max_stalled_count,
                           intervalMs=worker.stalled_ms)
        reply = self._guarded("stalled check", plan)
        if reply:
            for job_id in reply[0]:
                worker._emit_threadsafe("stalled", S.text(job_id))
