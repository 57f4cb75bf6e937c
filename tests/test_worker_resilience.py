"""The worker keeps going when Redis misbehaves: it waits for Redis at start,
backs off on errors it does not know, and ``burst`` mode stops it when idle."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis
from _worker_helpers import damage_meta, wait_for, wait_for_sync

from pyqueue import AsyncQueue, Job, Queue, RedisDataError, Worker
from pyqueue._server import RedisServer


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> Any:
    q = AsyncQueue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        await q.close()


def run_in_thread(worker: Worker, **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(target=worker.run, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def close_from_outside(worker: Worker, thread: threading.Thread) -> None:
    """Close a worker whose run() is in ``thread`` (no signals outside the main thread)."""
    loop = worker._loop
    assert loop is not None
    asyncio.run_coroutine_threadsafe(worker.close(), loop).result(15)
    thread.join(15)
    assert not thread.is_alive()


def test_run_waits_for_redis_that_is_down_at_start(
    fresh_redis: RedisServer, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = fresh_redis.url
    fresh_redis.stop()
    w = Worker(queue_name, lambda job: "done", connection=url, autorun=False, log_jobs=False)
    thread = run_in_thread(w)
    try:
        wait_for_sync(lambda: "cannot reach Redis" in caplog.text, 10, "a retry log line")
        assert thread.is_alive(), "run() gave up while Redis was down"
        fresh_redis.start()  # the same port
        with Queue(queue_name, connection=url) as q:
            job = q.add("j", {})
            wait_for_sync(lambda: q.get_job_state(job.id) == "completed", 30, "the job")
    finally:
        if thread.is_alive():
            close_from_outside(w, thread)
    retries = [r for r in caplog.records if "cannot reach Redis" in r.message]
    assert "attempt 1" in retries[0].message
    assert len(retries) < 20  # one line per attempt, attempts backed off


async def test_start_still_raises_when_redis_is_down(fresh_redis: RedisServer,
                                                     queue_name: str) -> None:
    from pyqueue import RedisConnectionError

    url = fresh_redis.url
    fresh_redis.stop()
    w = Worker(queue_name, lambda job: None, connection=url, autorun=False)
    with pytest.raises(RedisConnectionError):
        await w.start()
    fresh_redis.start()
    await w.start()  # a failed start may be tried again
    assert w.running
    await w.close()


async def test_worker_backs_off_on_error_replies_and_resumes(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    job = await queue.add("j", {})
    repair = damage_meta(redis_client, f"bull:{queue_name}:")
    errors: list[tuple[float, BaseException]] = []
    w = Worker(queue_name, lambda job: "ok", connection=redis_url, autorun=False,
               log_jobs=False)
    w.on("error", lambda exc: errors.append((time.monotonic(), exc)))
    async with w:
        await wait_for(lambda: len(errors) >= 3, what="fetch errors")
        assert w.state == "reconnecting"
        assert isinstance(errors[0][1], RedisDataError)
        assert "WRONGTYPE" in str(errors[0][1])
        started = time.monotonic()
        await wait_for(lambda: time.monotonic() - started > 1.5, what="time to pass")
        # Backed off (0.1, 0.2, 0.4, ... s), not spinning.
        assert len([t for t, _ in errors if t >= started]) <= 6
        repair()
        await wait_for(lambda: w.jobs_processed == 1, 15, "the job after the repair")
        assert w.state == "running"
    assert await queue.get_job_state(job.id) == "completed"


async def test_close_is_prompt_while_the_worker_backs_off(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    await queue.add("j", {})
    repair = damage_meta(redis_client, f"bull:{queue_name}:")
    errors: list[BaseException] = []
    w = Worker(queue_name, lambda job: None, connection=redis_url, autorun=False)
    w.on("error", errors.append)
    await w.start()
    await wait_for(lambda: len(errors) >= 5, what="several fetch errors")
    began = time.monotonic()
    await asyncio.wait_for(w.close(), 5)
    assert time.monotonic() - began < 2
    assert w.state == "closed"
    repair()


# --------------------------------------------------------------------------- burst


def test_run_burst_returns_once_the_queue_is_idle(redis_url: str, queue_name: str) -> None:
    attempts: dict[str, int] = {}

    def process(job: Job) -> Any:
        attempts[job.id] = attempts.get(job.id, 0) + 1
        if job.name == "flaky" and attempts[job.id] == 1:
            raise ValueError("once")
        return job.name

    with Queue(queue_name, connection=redis_url) as q:
        plain = [q.add("plain", {}) for _ in range(3)]
        urgent = q.add("urgent", {}, priority=1)
        flaky = q.add("flaky", {}, attempts=2)
        later = q.add("later", {}, delay=60)
        w = Worker(queue_name, process, connection=redis_url, concurrency=2, autorun=False,
                   log_jobs=False)
        thread = run_in_thread(w, burst=True)
        thread.join(30)
        assert not thread.is_alive(), "run(burst=True) did not return"
        for job in [*plain, urgent, flaky]:
            assert q.get_job_state(job.id) == "completed"
        assert attempts[flaky.id] == 2
        assert q.get_job_state(later.id) == "delayed"  # not due: not waited for
    assert w.state == "closed"


async def test_start_burst_closes_the_worker_when_idle(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    jobs = [await queue.add("j", {"n": n}) for n in range(4)]
    w = Worker(queue_name, lambda job: job.data["n"], connection=redis_url, autorun=False,
               log_jobs=False)
    await w.start(burst=True)
    await asyncio.wait_for(w.wait_closed(), 20)
    assert [await queue.get_job_state(j.id) for j in jobs] == ["completed"] * 4
    assert not w.running


async def test_burst_waits_for_jobs_active_elsewhere(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    release = asyncio.Event()

    async def slow(job: Job) -> Any:
        await release.wait()

    other = Worker(queue_name, slow, connection=redis_url, autorun=False, log_jobs=False)
    async with other:
        await queue.add("j", {})
        await wait_for(lambda: other.active_count == 1, what="the other worker's job")
        w = Worker(queue_name, lambda job: None, connection=redis_url, autorun=False,
                   log_jobs=False)
        await w.start(burst=True)
        await asyncio.sleep(0)
        await wait_for(lambda: w.last_fetch_at is not None, what="a fetch")
        assert w.running, "burst stopped although a job was active"
        release.set()
        await asyncio.wait_for(w.wait_closed(), 20)


def test_run_burst_returns_on_a_paused_queue(redis_url: str, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        job = q.add("held", {})
        q.pause()
        Worker(queue_name, lambda job: None, connection=redis_url).run(burst=True)
        assert q.get_job_state(job.id) == "waiting"  # nothing could be taken
        q.resume()
        Worker(queue_name, lambda job: None, connection=redis_url).run(burst=True)
        assert q.get_job_state(job.id) == "completed"
