"""Worker(execution="process") and the ``timeout`` option against a real Redis.

Process mode runs a module-level ``def`` processor (tests/_proc_jobs.py) in
child processes, so a timeout or a cancellation really stops the work: the
child is killed. Also: timeouts with async and thread processors retry as
usual.

No sleeps as synchronisation; the one deliberate wait (proving a side effect
never happens) is an observation window past the moment it would have
happened, after the child is already known to be dead.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import _proc_jobs
import pytest
import redis
from _worker_helpers import check_child_reports, pid_alive, wait_event, wait_for

from pyqueue import (
    AsyncQueue,
    InvalidJobOptionsError,
    Job,
    JobTimeoutError,
    UnrecoverableError,
    Worker,
)


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> Any:
    q = AsyncQueue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        await q.close()


def worker(queue_name: str, processor: Any, redis_url: str, **options: Any) -> Worker:
    options.setdefault("shutdown_grace", 2)
    return Worker(queue_name, processor, connection=redis_url, **options)


def process_worker(queue_name: str, processor: Any, redis_url: str, **options: Any) -> Worker:
    return worker(queue_name, processor, redis_url, execution="process", **options)


async def state_is(queue: AsyncQueue, job_id: str, *states: str) -> bool:
    return await queue.get_job_state(job_id) in states


# --------------------------------------------------------------------------- results, errors


async def test_process_mode_returns_results_from_a_child(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    async with process_worker(queue_name, _proc_jobs.echo, redis_url):
        job = await queue.add("hello", {"a": [1, "two", None]})
        result = await job.wait_until_finished(timeout=15)
    assert result["data"] == {"a": [1, "two", None]}
    assert result["name"] == "hello" and result["id"] == job.id
    assert result["pid"] != os.getpid()
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.return_value == result


async def test_process_mode_accepts_a_static_method(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    async with process_worker(queue_name, _proc_jobs.Holder.nested, redis_url):
        job = await queue.add("j", {})
        assert await job.wait_until_finished(timeout=15) == "nested ok"


async def test_process_mode_error_has_message_and_child_stacktrace(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    failed: list[BaseException] = []
    w = process_worker(queue_name, _proc_jobs.fails, redis_url)
    w.on("failed", lambda job, exc: failed.append(exc))
    async with w:
        job = await queue.add("j", {"n": 7}, attempts=2)
        await wait_for(lambda: state_is(queue, job.id, "failed"), timeout=15, what="failed")
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.failed_reason is not None and "bad input 7" in stored.failed_reason
    assert stored.attempts_made == 2  # retried as usual
    assert len(failed) == 2
    assert len(stored.stacktrace) == 2
    trace = stored.stacktrace[-1]
    # The child's trace: the function that raised, in the processor's module.
    assert "deep_inside_the_child" in trace
    assert "_proc_jobs.py" in trace
    assert "ValueError: bad input 7" in trace


@pytest.mark.parametrize("execution", [
    "thread",
    "process",
])
async def test_failed_reason_is_the_message_in_every_execution_mode(
    redis_url: str, queue_name: str, queue: AsyncQueue, execution: str
) -> None:
    async with worker(queue_name, _proc_jobs.fails, redis_url, execution=execution):
        job = await queue.add("j", {"n": 7})
        await wait_for(lambda: state_is(queue, job.id, "failed"), timeout=15, what="failed")
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.failed_reason == "bad input 7"


async def test_process_mode_unrecoverable_error_fails_without_retry(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    failed: list[BaseException] = []
    w = process_worker(queue_name, _proc_jobs.unrecoverable, redis_url)
    w.on("failed", lambda job, exc: failed.append(exc))
    async with w:
        job = await queue.add("j", {}, attempts=5)
        await wait_for(lambda: state_is(queue, job.id, "failed"), timeout=15, what="failed")
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.failed_reason == "cannot ever work"
    assert stored.attempts_made == 1
    assert len(failed) == 1 and isinstance(failed[0], UnrecoverableError)


async def test_process_mode_progress_and_logs_from_the_child_are_stored(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    await check_child_reports(queue, process_worker(queue_name, _proc_jobs.reports, redis_url))


# --------------------------------------------------------------------------- stopping the child


async def _stopped_child_test(queue: AsyncQueue, queue_name: str, redis_url: str,
                              redis_client: redis.Redis, how: str) -> None:
    pid_key = f"test:{queue_name}:pid"
    after_key = f"test:{queue_name}:after"
    sleep = 1.2
    failed: list[BaseException] = []
    w = process_worker(queue_name, _proc_jobs.sleeps_then_writes, redis_url)
    w.on("failed", lambda job, exc: failed.append(exc))
    opts: dict[str, Any] = {"attempts": 3} if how == "cancel" else {"timeout": 0.4}
    async with w:
        # Warm up: a child starts on demand and is reused; starting one takes
        # a few hundred ms, which a short timeout would count (see the xfail
        # test below), so the timed job gets the warm child.
        warm = await queue.add("j", {"url": redis_url, "pid_key": pid_key + "w",
                                     "after": after_key + "w", "sleep": 0})
        assert await warm.wait_until_finished(timeout=20) == "finished"
        warm_pid = int(redis_client.get(pid_key + "w"))  # type: ignore[arg-type]
        job = await queue.add("j", {"url": redis_url, "pid_key": pid_key, "after": after_key,
                                    "sleep": sleep}, **opts)

        async def started_or_failed() -> bool:
            return bool(redis_client.get(pid_key)) or await state_is(queue, job.id, "failed")
        await wait_for(started_or_failed, timeout=15, what="child started")
        early = await queue.get_job(job.id)
        assert redis_client.get(pid_key), (early.failed_reason, early.stacktrace)  # type: ignore[union-attr]
        started = time.monotonic()
        pid = int(redis_client.get(pid_key))  # type: ignore[arg-type]
        assert pid != os.getpid()
        assert pid == warm_pid  # the idle child was reused
        if how == "cancel":
            assert await queue.cancel_job(job.id, "operator said stop") == "requested"
        await wait_for(lambda: state_is(queue, job.id, "failed"), timeout=5, what="failed")
        stopped_after = time.monotonic() - started
        await wait_for(lambda: not pid_alive(pid), timeout=5, what="child process gone")
        # The child is dead; watch past the moment it would have written.
        await asyncio.sleep(max(started + sleep + 0.3 - time.monotonic(), 0))
        assert redis_client.exists(after_key) == 0
        # The worker replaces the child and goes on.
        nxt = await queue.add("j", {"url": redis_url, "pid_key": pid_key + "2",
                                    "after": after_key + "2", "sleep": 0})
        assert await nxt.wait_until_finished(timeout=15) == "finished"
    assert stopped_after < (1.0 if how == "timeout" else 2.0)
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.attempts_made == 1
    assert len(failed) == 1
    if how == "timeout":
        assert isinstance(failed[0], JobTimeoutError)
        assert stored.failed_reason is not None and "timed out" in stored.failed_reason
    else:
        assert stored.failed_reason == "operator said stop"
    redis_client.delete(pid_key, pid_key + "2", after_key + "2", pid_key + "w", after_key + "w")


async def test_process_mode_timeout_kills_the_child(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    await _stopped_child_test(queue, queue_name, redis_url, redis_client, "timeout")


async def test_process_mode_cancel_kills_the_child(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    await _stopped_child_test(queue, queue_name, redis_url, redis_client, "cancel")


async def test_process_mode_timeout_retries_in_a_fresh_child(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    failed: list[BaseException] = []
    w = process_worker(queue_name, _proc_jobs.slow_first_attempt, redis_url)
    w.on("failed", lambda job, exc: failed.append(exc))
    async with w:
        # Each attempt after a kill starts a fresh child; the timeout must
        # cover that start (a few hundred ms, more on a loaded machine).
        job = await queue.add("j", {}, attempts=3, timeout=2.0)
        result = await job.wait_until_finished(timeout=20)
    assert result["attempt"] == 2
    assert len(failed) == 1 and isinstance(failed[0], JobTimeoutError)
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 2


async def test_process_mode_timeout_does_not_count_the_child_start(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    async with process_worker(queue_name, _proc_jobs.echo, redis_url):
        job = await queue.add("j", {}, timeout=0.1)  # echo returns at once
        await wait_for(lambda: state_is(queue, job.id, "completed", "failed"), timeout=20,
                       what="finished")
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert (await queue.get_job_state(job.id), stored.failed_reason) == ("completed", None)


async def test_process_mode_concurrency_runs_n_children_at_once(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    key = f"test:{queue_name}:cc"
    async with process_worker(queue_name, _proc_jobs.counts_concurrency, redis_url,
                              concurrency=3):
        jobs = await queue.add_bulk([{"name": "j", "data": {"url": redis_url, "key": key}}
                                     for _ in range(4)])
        await wait_for(lambda: redis_client.get(f"{key}:running") == b"3", timeout=20,
                       what="3 children running at once")
        assert await queue.get_job_state(jobs[3].id) == "waiting"
        redis_client.rpush(f"{key}:go", "go")
        pids = [await job.wait_until_finished(timeout=15) for job in jobs]
    assert int(redis_client.get(f"{key}:max")) == 3  # type: ignore[arg-type]
    assert len(set(pids[:3])) == 3
    assert os.getpid() not in pids
    redis_client.delete(*(f"{key}:{s}" for s in ("running", "max", "pids", "go")))


# --------------------------------------------------------------------------- construction


def test_process_mode_refuses_an_async_processor(redis_url: str, queue_name: str) -> None:
    with pytest.raises(InvalidJobOptionsError, match=r"async|def"):
        Worker(queue_name, _proc_jobs.async_processor, connection=redis_url,
               execution="process")


def test_process_mode_refuses_lambdas_and_closures(redis_url: str, queue_name: str) -> None:
    def closure(job: Job) -> Any:
        return None

    for processor in (lambda job: None, closure):
        with pytest.raises(InvalidJobOptionsError, match="module level"):
            Worker(queue_name, processor, connection=redis_url, execution="process")


def test_bad_execution_mode_is_refused(redis_url: str, queue_name: str) -> None:
    with pytest.raises(InvalidJobOptionsError, match="execution"):
        Worker(queue_name, _proc_jobs.echo, connection=redis_url, execution="fork")


# --------------------------------------------------------------------------- timeouts elsewhere


async def test_async_processor_timeout_retries_then_succeeds(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    failed: list[tuple[int, BaseException]] = []
    cancelled: list[int] = []

    async def process(job: Job) -> Any:
        if job.attempts_made == 0:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(job.attempts_made)
                raise
        return {"attempt": job.attempts_made + 1}

    w = worker(queue_name, process, redis_url)
    w.on("failed", lambda job, exc: failed.append((job.attempts_made, exc)))
    t0 = time.monotonic()
    async with w:
        job = await queue.add("j", {}, attempts=3, timeout=0.3)
        assert await job.wait_until_finished(timeout=10) == {"attempt": 2}
    assert time.monotonic() - t0 < 3
    assert cancelled == [0]  # the async processor was really cancelled
    assert len(failed) == 1 and isinstance(failed[0][1], JobTimeoutError)
    assert failed[0][0] == 1
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 2


async def test_thread_processor_timeout_retries_then_succeeds(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    release = threading.Event()
    timed_out = asyncio.Event()
    failed: list[BaseException] = []
    attempts_seen: list[int] = []

    def process(job: Job) -> Any:
        attempts_seen.append(job.attempts_made)
        if job.attempts_made == 0:
            release.wait(10)  # overruns the timeout; a thread cannot be stopped
            return "late"
        return "fast"

    def on_failed(job: Job, exc: BaseException) -> None:
        failed.append(exc)
        timed_out.set()
        release.set()  # let the abandoned thread go, so the retry gets a thread

    w = worker(queue_name, process, redis_url)
    w.on("failed", on_failed)
    async with w:
        job = await queue.add("j", {}, attempts=2, timeout=0.3)
        await wait_event(timed_out, timeout=5, what="first attempt timed out")
        assert await job.wait_until_finished(timeout=10) == "fast"
    assert attempts_seen == [0, 1]
    assert len(failed) == 1 and isinstance(failed[0], JobTimeoutError)
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 2


# ------------------------------------------------------------- jobs that move themselves

MOVED_ITSELF = [(_proc_jobs.delays_itself_once, "after the delay"),
                (_proc_jobs.sleeps_durably, "woke up"),
                (_proc_jobs.sums_its_children, 13)]


@pytest.mark.parametrize(("processor", "expected"), MOVED_ITSELF,
                         ids=[p.__name__ for p, _ in MOVED_ITSELF])
async def test_process_mode_job_that_moved_itself_is_not_settled_again(
        queue: AsyncQueue, queue_name: str, redis_url: str, processor: Any, expected: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    """move_to_delayed + DelayedError, sleep(), move_to_waiting_children +
    WaitingChildrenError in a child: the worker leaves the job where it moved
    itself (no retry, no "lock lost"), and it ends completed with its value."""
    job = await queue.add("parent", {"url": redis_url})
    lost: list[str] = []
    with caplog.at_level("DEBUG", logger="pyqueue"):
        async with process_worker(queue_name, processor, redis_url, concurrency=2) as w:
            w.on("lock_lost", lambda j, exc: lost.append(j.id))
            assert await job.wait_until_finished(timeout=30) == expected
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.attempts_made == 1 and stored.failed_reason is None
    assert lost == []
    assert not [r for r in caplog.records if "lock" in r.getMessage().lower()]
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
