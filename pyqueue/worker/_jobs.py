"""Running one job: the processor through its executor, then the outcome (complete, retry, fail,
hand back) written to Redis.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from .. import _ops, _schedule
from .. import _scripts as S
from .._keys import QueueKeys
from .._plan import Plan
from .._procpool import ProcessorError
from ..errors import (
    JobCancelledError,
    JobLockError,
    JobStateError,
    PyQueueError,
    RedisConnectionError,
    UnrecoverableError,
)
from ..job import AsyncJob, Binding, Job, JobBase
from ..options import Retention, encode_json, retention_from_opts
from ._events import HookSet, LocalEvents
from ._executors import Executor, invoke
from ._finish import FinishBatcher, NextJob
from ._options import WorkerOptions
from ._outcome import Outcome, dead_letter_kind, decide
from ._report import Reporter
from ._slots import Slots

STACKTRACE_LIMIT = 10
Runner = Callable[[Plan[Any]], Coroutine[Any, Any, Any]]


@dataclass
class Status:
    """What the worker reports about itself (``health()``), shared by its parts."""

    state: str = "idle"  # idle | running | reconnecting | closing | closed
    last_fetch_at: float | None = None  # epoch seconds of the last fetch that returned
    last_ok: float | None = None  # monotonic: last fetch or block that worked
    had_jobs: bool = False
    jobs_processed: int = 0

    def consuming(self, running: bool, drain_delay: float) -> bool:
        """Running, and a fetch or a blocking wait for jobs completed within the
        last ``drain_delay + 10`` seconds."""
        fresh = self.last_ok is not None and \
            time.monotonic() - self.last_ok <= drain_delay + 10
        return bool(running and self.state == "running" and fresh)


def reason_of(exc: BaseException) -> str:
    """A failed reason: the message, or the class name when it is empty."""
    return str(exc) or type(exc).__name__


class JobRunner:
    """Processes jobs for the slots and writes each outcome to Redis."""

    def __init__(self, *, keys: QueueKeys, clock: _ops.Clock, options: WorkerOptions,
                 slots: Slots, batcher: FinishBatcher, events: LocalEvents, hooks: HookSet,
                 reporter: Reporter, status: Status, run: Runner,
                 reset: Callable[[BaseException], Coroutine[Any, Any, None]],
                 is_async: bool) -> None:
        self._keys, self._clock, self._options = keys, clock, options
        self._slots, self._batcher, self._events, self._hooks = slots, batcher, events, hooks
        self._reporter, self._status, self._run, self._reset = reporter, status, run, reset
        self._is_async = is_async
        self.executor: Executor | None = None  # set when the worker starts
        self.binding: Binding | None = None

    async def process(self, job_id: str, token: str, fields: dict[str, str]) -> NextJob:
        """Run one job and finish it; returns the next job handed out, if any."""
        assert self.binding is not None and self.executor is not None
        binding = self.binding
        job = (AsyncJob if binding.is_async else Job)(binding, job_id, fields, token)
        if job.corruption is not None:
            return await self._settle(job, UnrecoverableError(job.corruption), final=True)
        if not self._is_async:
            job.cancel_requested  # noqa: B018 - created here, on the loop, before any thread reads it
        if job.deferred_failure:
            return await self._settle(job, UnrecoverableError(job.deferred_failure), final=True)
        if job.scheduler_id is not None:
            await self._schedule_next(job)
        if self._events.listeners["active"]:
            self._events.emit("active", job)
        hooks = self._hooks
        for method in hooks.before_process:  # inlined HookSet.call: once per job
            try:
                method(job)
            except Exception:
                hooks.failed(method)
        task = asyncio.current_task()
        assert task is not None
        self._slots.current[job.id] = (job, task)
        result: Any = None
        error: BaseException | None = None
        try:
            result = await invoke(self.executor, job)
            value = "null" if result is None else encode_json(result, "return value")
        except asyncio.CancelledError:
            if job.cancel_reason is None:
                raise  # shutdown, not a cancellation of this job
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            result, error = None, JobCancelledError(job.cancel_reason)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            result, error = None, exc
        finally:
            self._slots.current.pop(job.id, None)
        if hooks.after_process:
            hooks.call(hooks.after_process, job, result, error)
        if error is None:
            if job.cancel_reason is not None:  # a def processor finished regardless
                return await self._finish_cancelled(job)
            return await self._finish_completed(job, value, result)
        return await self._settle(job, error)

    async def _settle(self, job: JobBase, error: BaseException, final: bool = False) -> NextJob:
        """Act on the outcome of an attempt that raised ``error``."""
        outcome = decide(job, error, strategy=self._options.backoff_strategy, final=final)
        kind = outcome.kind
        if kind == "delayed":
            if job.lock_token is not None:
                # DelayedError without move_to_delayed(): hand the job back now.
                await self._retry(job, due=0, front=True)
            return None
        if kind == "rate_limited":
            await self._retry(job, due=0, front=True, undo_start=True)
            return None
        if kind == "cancelled":
            if job.cancel_reason is None:
                job.cancel_reason = "cancelled"
            return await self._finish_cancelled(job)
        if outcome.strategy_error is not None:
            self._reporter.report("backoff strategy raised", outcome.strategy_error)
        return await self._finish_failed(job, error, outcome)

    async def _schedule_next(self, job: JobBase) -> None:
        """Create the scheduler's next iteration before running this one, so a
        failing iteration cannot stop its schedule."""
        assert job.scheduler_id is not None
        try:
            await self._run(_schedule.next_iteration_plan(self._keys, self._clock, job.id,
                                                          job.scheduler_id, job.opts))
        except (PyQueueError, OSError, ValueError) as exc:
            self._reporter.report("scheduling the next iteration failed", exc)

    async def _finish(self, job: JobBase, **params: Any) -> tuple[bool, NextJob]:
        """Finish ``job`` through the batcher; returns (accepted, next job).

        ``accepted`` is False when Redis refused the write (the lock was lost:
        another worker owns the job now) or could not be reached (the job
        stays active and the stalled check hands it out again).
        """
        self._slots.tokens.release(job.id, job.lock_token)
        future = self._batcher.submit(S.finish_item(id=job.id, lock_token=job.lock_token,
                                                        **params))
        try:
            code, nxt = await future
        except (RedisConnectionError, PyQueueError, OSError) as exc:
            self._reporter.report("finish failed", exc)
            await self._reset(exc)
            return False, None
        if code in S.FLOW_REFUSALS:  # unfinished or failed children: the attempt fails
            S.check(code, op="complete", job_id=job.id)
        if code < 0:
            try:
                S.check(code, op="finish", job_id=job.id)
            except JobLockError as exc:
                self._events.emit("lock_lost", job, exc)
                self._reporter.report("lock lost", exc)
            except PyQueueError as exc:
                self._reporter.report("finish refused", exc)
            return False, None
        self._status.jobs_processed += 1
        return True, nxt

    async def _finish_completed(self, job: JobBase, value: str, result: Any) -> NextJob:
        keep = self._retention(job, True)
        try:
            accepted, nxt = await self._finish(job, target="completed", value=value,
                                               keep_count=keep.count, keep_age_ms=keep.age_ms)
        except JobStateError as exc:  # refused: the job has unfinished or failed children
            return await self._settle(job, exc)
        if accepted:
            job.return_value = result
            job.attempts_made += 1
            if self._events.listeners["completed"]:
                self._events.emit("completed", job, result)
            for method in self._hooks.on_completed:  # inlined HookSet.call
                try:
                    method(job, result)
                except Exception:
                    self._hooks.failed(method)
        return nxt

    async def _finish_failed(self, job: JobBase, exc: BaseException, outcome: Outcome) -> NextJob:
        made = job.attempts_made + 1
        reason = reason_of(exc)
        trace = self._stacktrace(job, exc)
        if outcome.kind == "retry":
            delay = outcome.delay_ms
            due = self._clock.now_ms() + delay if delay > 0 else 0
            if await self._retry(job, due=due, count_attempt=True, reason=reason, trace=trace):
                job.attempts_made = made
                job.failed_reason = reason
                self._failed(job, exc, True)
                if self._hooks.on_retry:
                    self._hooks.call(self._hooks.on_retry, job, exc, delay / 1000)
            return None
        keep = self._retention(job, False)
        accepted, nxt = await self._finish(job, target="failed", value=reason,
                                           stacktrace=trace, keep_count=keep.count,
                                           keep_age_ms=keep.age_ms, exhausted=outcome.exhausted,
                                           dead_letter=dead_letter_kind(job, exc, outcome))
        if accepted:
            job.attempts_made = made
            job.failed_reason = reason
            self._failed(job, exc, False)
        return nxt

    async def _finish_cancelled(self, job: JobBase) -> NextJob:
        """Fail (or remove) a cancelled job, without retry."""
        reason = job.cancel_reason or "cancelled"
        exc = JobCancelledError(reason)
        trace = self._stacktrace(job, exc)
        keep = Retention(count=0) if job.cancel_remove else self._retention(job, False)
        accepted, nxt = await self._finish(job, target="failed", value=reason,
                                           stacktrace=trace, keep_count=keep.count,
                                           keep_age_ms=keep.age_ms, exhausted=False)
        if accepted:
            job.attempts_made += 1
            job.failed_reason = reason
            self._failed(job, exc, False)
        return nxt

    def _failed(self, job: JobBase, exc: BaseException, will_retry: bool) -> None:
        self._events.emit("failed", job, exc)
        if self._hooks.on_failed:
            self._hooks.call(self._hooks.on_failed, job, exc, will_retry)

    async def _retry(self, job: JobBase, *, due: int, count_attempt: bool = False,
                     reason: str | None = None, trace: str | None = None,
                     front: bool = False, undo_start: bool = False) -> bool:
        """Move the job out of active without finishing it; False if refused."""
        plan = _ops.simple(self._clock, partial(
            S.retry_job, self._keys, id=job.id, lock_token=job.lock_token, due_ms=due,
            count_attempt=count_attempt, reason=reason, stacktrace=trace, front=front,
            undo_start=undo_start), op="retry", job_id=job.id)
        self._slots.tokens.release(job.id, job.lock_token)
        try:
            await self._run(plan)
        except JobLockError as exc:
            self._events.emit("lock_lost", job, exc)
            self._reporter.report("lock lost", exc)
            return False
        except (RedisConnectionError, PyQueueError, OSError) as exc:
            self._reporter.report("retry failed", exc)
            await self._reset(exc)
            return False
        return True

    async def release_active(self) -> None:
        """Hand every job still held back to the queue (shutdown)."""
        for job_id, token in self._slots.tokens.take_all().items():
            plan = _ops.simple(self._clock, partial(
                S.retry_job, self._keys, id=job_id, lock_token=token, due_ms=0, front=True,
                undo_start=True), op="release", job_id=job_id)
            try:
                await self._run(plan)
            except PyQueueError as exc:
                self._reporter.report("release failed", exc)

    def cancel_local(self, job_id: str, reason: str, remove: bool) -> None:
        """A cancellation request for a job this worker runs (on the loop)."""
        entry = self._slots.current.get(job_id)
        if entry is None:
            return
        job, task = entry
        if job.cancel_reason is not None:
            return
        job.cancel_reason = reason
        job.cancel_remove = remove
        job.cancel_requested.set()
        if self.executor is not None and self.executor.interruptible:
            task.cancel()  # a process-mode job's child is killed

    def _retention(self, job: JobBase, completed: bool) -> Retention:
        stored = retention_from_opts(job.opts.get("removeOnComplete" if completed
                                                  else "removeOnFail"))
        if stored is not None:
            return stored
        return self._options.keep_complete if completed else self._options.keep_fail

    @staticmethod
    def _stacktrace(job: JobBase, exc: BaseException) -> str:
        traces = list(job.stacktrace)
        if isinstance(exc, ProcessorError):
            traces.append(exc.remote_traceback)
        else:
            traces.append("".join(traceback.format_exception(type(exc), exc,
                                                             exc.__traceback__)))
        return encode_json(traces[-STACKTRACE_LIMIT:], "stacktrace")
