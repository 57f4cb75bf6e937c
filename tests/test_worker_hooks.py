"""Worker hooks (``WorkerHooks``), the built-in per-job log lines, the event-loop
lag warning and ``run()`` inside an event loop, against a real Redis."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

import pytest
import redis
from _worker_helpers import wait_for

from pyqueue import (
    AsyncQueue,
    ConfigurationError,
    Job,
    UnrecoverableError,
    Worker,
    WorkerHooks,
)
from pyqueue.worker._joblog import JobLogHook


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> Any:
    q = AsyncQueue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        await q.close()


class Recorder(WorkerHooks):
    """Records every hook call as (method, arguments)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def names(self, job_id: str | None = None) -> list[str]:
        return [name for name, args in self.calls
                if job_id is None or (args and getattr(args[0], "id", None) == job_id)]

    def on_worker_start(self, worker: Worker) -> None:
        self.calls.append(("on_worker_start", (worker,)))

    def on_worker_stop(self, worker: Worker) -> None:
        self.calls.append(("on_worker_stop", (worker,)))

    def on_fetch(self, job_ids: Sequence[str]) -> None:
        self.calls.append(("on_fetch", (list(job_ids),)))

    def before_process(self, job: Job) -> None:
        self.calls.append(("before_process", (job,)))

    def after_process(self, job: Job, result: Any, error: BaseException | None) -> None:
        self.calls.append(("after_process", (job, result, error)))

    def on_completed(self, job: Job, result: Any) -> None:
        self.calls.append(("on_completed", (job, result)))

    def on_failed(self, job: Job, error: BaseException, will_retry: bool) -> None:
        self.calls.append(("on_failed", (job, error, will_retry)))

    def on_retry(self, job: Job, error: BaseException, delay: float) -> None:
        self.calls.append(("on_retry", (job, error, delay)))

    def on_stalled(self, job_id: str) -> None:
        self.calls.append(("on_stalled", (job_id,)))


async def test_hooks_see_every_lifecycle_point_in_order(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    rec = Recorder()

    async def process(job: Job) -> Any:
        if job.name == "bad" and job.attempts_made == 0:
            raise ValueError("first try fails")
        if job.name == "bad":
            raise UnrecoverableError("second try gives up")
        return {"ok": job.data["n"]}

    ok = await queue.add("good", {"n": 1})
    bad = await queue.add("bad", {"n": 2}, attempts=3, backoff=0.05)
    w = Worker(queue_name, process, connection=redis_url, hooks=[rec], autorun=False)
    async with w:
        await wait_for(lambda: "on_failed" in rec.names(bad.id) and
                       rec.names(bad.id).count("on_failed") == 2, what="two failed attempts")
    assert rec.calls[0] == ("on_worker_start", (w,))
    assert rec.calls[-1] == ("on_worker_stop", (w,))
    fetched = [i for name, args in rec.calls if name == "on_fetch" for i in args[0]]
    assert ok.id in fetched and bad.id in fetched

    assert rec.names(ok.id) == ["before_process", "after_process", "on_completed"]
    calls = {name: args for name, args in rec.calls
             if args and getattr(args[0], "id", None) == ok.id}
    assert calls["after_process"][1:] == ({"ok": 1}, None)
    assert calls["on_completed"][1] == {"ok": 1}

    assert rec.names(bad.id) == ["before_process", "after_process", "on_failed", "on_retry",
                                 "before_process", "after_process", "on_failed"]
    bad_calls = [args for name, args in rec.calls
                 if args and getattr(args[0], "id", None) == bad.id]
    first_failed, retry, last_failed = bad_calls[2], bad_calls[3], bad_calls[6]
    assert isinstance(first_failed[1], ValueError) and first_failed[2] is True
    assert retry[2] == pytest.approx(0.05)
    assert isinstance(last_failed[1], UnrecoverableError) and last_failed[2] is False
    assert isinstance(bad_calls[1][2], ValueError)  # after_process got the error


async def test_a_raising_hook_is_logged_and_the_job_still_completes(
    redis_url: str, queue_name: str, queue: AsyncQueue, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(WorkerHooks):
        def before_process(self, job: Job) -> None:
            raise RuntimeError("hook bug")

        def on_completed(self, job: Job, result: Any) -> None:
            raise RuntimeError("another hook bug")

    rec = Recorder()
    job = await queue.add("j", {})
    async with Worker(queue_name, lambda job: "done", connection=redis_url,
                      hooks=[Broken(), rec], autorun=False):
        await wait_for(lambda: "on_completed" in rec.names(job.id), what="completion")
    assert await queue.get_job_state(job.id) == "completed"
    assert rec.names(job.id) == ["before_process", "after_process", "on_completed"]
    assert "hook bug" in caplog.text and "another hook bug" in caplog.text


def test_only_overridden_hook_methods_are_called() -> None:
    class OnlyCompleted(WorkerHooks):
        def on_completed(self, job: Job, result: Any) -> None:
            pass

    w = Worker("q", lambda job: None, hooks=[OnlyCompleted()], log_jobs=False, autorun=False,
               connection="redis://127.0.0.1:1/0")
    hooks = w._hooks
    assert len(hooks.on_completed) == 1
    # No per-job work at all at the points nobody overrides.
    assert hooks.before_process == hooks.after_process == hooks.on_failed == ()
    plain = Worker("q", lambda job: None, log_jobs=False, autorun=False,
                   connection="redis://127.0.0.1:1/0")
    assert plain._hooks.hooks == ()


def test_hooks_must_be_worker_hooks() -> None:
    with pytest.raises(ConfigurationError, match="WorkerHooks"):
        Worker("q", lambda job: None, hooks=[object()], autorun=False,  # type: ignore[list-item]
               connection="redis://127.0.0.1:1/0")


# --------------------------------------------------------------------------- job log lines


async def test_each_job_logs_one_line_on_completion_and_failure(
    redis_url: str, queue_name: str, queue: AsyncQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pyqueue.worker")

    def process(job: Job) -> Any:
        if job.name == "flaky":
            raise ConnectionError("smtp down")
        return None

    good = await queue.add("welcome", {})
    flaky = await queue.add("flaky", {}, attempts=2, backoff=0.1)
    done: list[str] = []
    w = Worker(queue_name, process, connection=redis_url, autorun=False)
    w.on("completed", lambda job, result: done.append(job.id))
    w.on("failed", lambda job, exc: done.append(job.id) if job.attempts_made == 2 else None)
    async with w:
        await wait_for(lambda: good.id in done and flaky.id in done, what="both jobs finished")
    lines = [r for r in caplog.records if r.name == "pyqueue.worker"]
    completed = [r for r in lines if f"job {good.id} (welcome) completed" in r.message]
    assert len(completed) == 1 and completed[0].levelno == logging.INFO
    assert re.search(r"completed in \d+ ms$", completed[0].message)
    retry = [r for r in lines if f"job {flaky.id} (flaky) failed: smtp down; retrying in 0.1s"
             in r.message]
    assert len(retry) == 1 and retry[0].levelno == logging.WARNING
    assert retry[0].message.endswith("attempt 1/2")
    final = [r for r in lines if f"job {flaky.id} (flaky) failed for good after attempt 2/2: "
             "smtp down" in r.message]
    assert len(final) == 1 and final[0].levelno == logging.WARNING


async def test_job_lines_are_rate_limited_with_a_summary(
    redis_url: str, queue_name: str, queue: AsyncQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pyqueue.worker")
    await queue.add_bulk([{"name": "n", "data": {}} for _ in range(30)])
    w = Worker(queue_name, lambda job: None, connection=redis_url, concurrency=5,
               log_jobs=False, hooks=[JobLogHook(queue_name, lines_per_second=3, window=60)],
               autorun=False)
    async with w:
        await wait_for(lambda: w.jobs_processed == 30, what="30 jobs")
    messages = [r.message for r in caplog.records if r.name == "pyqueue.worker"]
    assert len([m for m in messages if re.search(r"completed in \d+ ms$", m)]) == 3
    assert f"worker {queue_name}: ... and 27 more jobs completed in the last 60s" in messages


async def test_log_jobs_false_logs_nothing_per_job(
    redis_url: str, queue_name: str, queue: AsyncQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pyqueue.worker")
    job = await queue.add("j", {})
    w = Worker(queue_name, lambda job: None, connection=redis_url, log_jobs=False,
               autorun=False)
    async with w:
        await wait_for(lambda: w.jobs_processed == 1, what="the job")
    assert not [r for r in caplog.records if f"job {job.id}" in r.message]


# --------------------------------------------------------------------------- the event loop


async def test_an_async_processor_blocking_the_loop_is_named_in_a_warning(
    redis_url: str, queue_name: str, queue: AsyncQueue, caplog: pytest.LogCaptureFixture
) -> None:
    async def process(job: Job) -> Any:
        time.sleep(1.6)  # the mistake: blocks the event loop
        return None

    job = await queue.add("sleepy", {})
    w = Worker(queue_name, process, connection=redis_url, log_jobs=False, autorun=False)
    async with w:
        await wait_for(lambda: w.jobs_processed == 1, what="the job")
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and "event loop has been blocked" in r.message]
    assert len(warnings) == 1
    assert f"jobs running: {job.id} (sleepy)" in warnings[0].message


async def test_a_responsive_loop_logs_no_lag_warning(
    redis_url: str, queue_name: str, queue: AsyncQueue, caplog: pytest.LogCaptureFixture
) -> None:
    async def process(job: Job) -> Any:
        await asyncio.sleep(1.3)

    await queue.add("patient", {})
    w = Worker(queue_name, process, connection=redis_url, log_jobs=False, autorun=False)
    async with w:
        await wait_for(lambda: w.jobs_processed == 1, what="the job")
    assert "event loop has been blocked" not in caplog.text


async def test_run_inside_a_running_event_loop_raises(redis_client: redis.Redis,
                                                      redis_url: str, queue_name: str) -> None:
    w = Worker(queue_name, lambda job: None, connection=redis_url, autorun=False)
    with pytest.raises(ConfigurationError, match=r"await worker.start\(\)"):
        w.run()
    assert not w.running
    await w.close()


async def test_on_stalled_gets_the_id_of_a_job_found_without_lock(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    rec = Recorder()
    running = asyncio.Event()
    release = asyncio.Event()

    async def process(job: Job) -> Any:
        running.set()
        await release.wait()

    job = await queue.add("j", {})
    w = Worker(queue_name, process, connection=redis_url, stalled_interval=0.2,
               concurrency=2, hooks=[rec], log_jobs=False, autorun=False, shutdown_grace=1)
    async with w:
        await asyncio.wait_for(running.wait(), 10)
        redis_client.delete(f"bull:{queue_name}:{job.id}:lock")  # as if its worker died
        await wait_for(lambda: ("on_stalled", (job.id,)) in rec.calls, what="on_stalled")
        release.set()
