"""Job methods: plain calls on jobs from ``Queue``, awaitables on jobs from ``AsyncQueue``."""

from __future__ import annotations

import asyncio
import inspect
import json
from datetime import timedelta
from typing import Any

import _helpers_queue
import pytest
import redis
from _helpers_queue import (
    Holder,
    await_until,
    call,
    is_async,
    job_hash,
    process_all,
    stream_events,
    worker,
)

from pyqueue import (
    AsyncQueue,
    Job,
    JobError,
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    Queue,
)

Q = Queue | AsyncQueue


# Shared fixtures (defined in _helpers_queue).
anyq = _helpers_queue.anyq


def wait_task(queue: Q, job: Job, timeout: float | None) -> asyncio.Future[Any]:
    """``job.wait_until_finished(timeout)`` running in the background for either front."""
    if is_async(queue):
        return asyncio.ensure_future(job.wait_until_finished(timeout))
    return asyncio.ensure_future(asyncio.to_thread(job.wait_until_finished, timeout))


async def test_methods_are_plain_on_sync_jobs_and_awaitable_on_async_jobs(
        anyq: Q) -> None:
    job = await call(anyq.add("x", {"a": 1}))
    result = job.get_state()
    if is_async(anyq):
        assert inspect.isawaitable(result)
        assert await result == "waiting"
    else:
        assert result == "waiting"


async def test_update_progress_stores_field_and_writes_event(
        anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    job = await call(anyq.add("x", None))
    await call(job.update_progress(42))
    assert job.progress == 42
    assert job_hash(redis_client, queue_name, job.id)["progress"] == "42"
    assert stream_events(redis_client, queue_name)[-1] == (
        "progress", {"jobId": job.id, "data": "42"})
    await call(job.update_progress({"step": 2, "of": 5}))
    assert json.loads(job_hash(redis_client, queue_name, job.id)["progress"]) == {
        "step": 2, "of": 5}
    fetched = await call(anyq.get_job(job.id))
    assert fetched.progress == {"step": 2, "of": 5}


async def test_update_progress_on_a_removed_job_raises(anyq: Q) -> None:
    job = await call(anyq.add("x", None))
    await call(anyq.remove(job.id))
    with pytest.raises(JobNotFoundError):
        await call(job.update_progress(1))


async def test_log_and_get_logs(anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    job = await call(anyq.add("x", None))
    assert await call(job.get_logs()) == []
    assert await call(job.log("first")) == 1
    assert await call(job.log("second line")) == 2
    assert await call(job.get_logs()) == ["first", "second line"]
    assert redis_client.lrange(f"bull:{queue_name}:{job.id}:logs", 0, -1) == [
        b"first", b"second line"]
    assert await call(job.get_logs(1, 1)) == ["second line"]


async def test_log_is_trimmed_to_keep_logs(anyq: Q) -> None:
    job = await call(anyq.add("x", None, keep_logs=2))
    for i in range(4):
        await call(job.log(f"line {i}"))
    assert await call(job.get_logs()) == ["line 2", "line 3"]


async def test_update_data(anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    job = await call(anyq.add("x", {"v": 1}))
    await call(job.update_data({"v": 2, "list": [1, 2]}))
    assert job.data == {"v": 2, "list": [1, 2]}
    assert json.loads(job_hash(redis_client, queue_name, job.id)["data"]) == {
        "v": 2, "list": [1, 2]}
    assert (await call(anyq.get_job(job.id))).data == {"v": 2, "list": [1, 2]}


async def test_get_state_follows_the_job(anyq: Q, redis_client: redis.Redis, queue_name: str,
                                         redis_url: str) -> None:
    delayed = await call(anyq.add("d", None, delay=60))
    assert await call(delayed.get_state()) == "delayed"
    prio = await call(anyq.add("p", None, priority=3))
    assert await call(prio.get_state()) == "prioritized"
    await call(delayed.promote())
    assert await call(delayed.get_state()) == "waiting"
    await process_all(queue_name, redis_url, redis_client, 2)
    assert await call(delayed.get_state()) == "completed"
    assert await call(prio.get_state()) == "completed"


async def test_remove(anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    job = await call(anyq.add("x", None))
    await call(job.log("l"))
    assert await call(job.remove()) is True
    assert await call(anyq.get_job(job.id)) is None
    assert redis_client.keys(f"bull:{queue_name}:{job.id}*") == []
    assert await call(job.get_state()) == "unknown"
    assert await call(job.remove()) is False


async def test_remove_refused_while_active(anyq: Q, redis_url: str, queue_name: str) -> None:
    job = await call(anyq.add("hold", None))
    proc = Holder(hold={"hold"})
    async with worker(queue_name, redis_url, proc):
        await await_until(lambda: job.id in proc.started)
        assert await call(job.remove()) is False
        assert await call(job.get_state()) == "active"
        proc.release.set()


async def test_retry_a_failed_job(anyq: Q, redis_client: redis.Redis, queue_name: str,
                                  redis_url: str) -> None:
    job = await call(anyq.add("bad", {"n": 1}))
    await process_all(queue_name, redis_url, redis_client, 1, Holder(fail={"bad"}))
    failed = await call(anyq.get_job(job.id))
    assert failed.failed_reason == f"boom {job.id}"
    assert failed.stacktrace and "RuntimeError" in failed.stacktrace[-1]
    assert failed.attempts_made == 1
    await call(failed.retry())
    assert await call(failed.get_state()) == "waiting"
    stored = job_hash(redis_client, queue_name, job.id)
    assert "failedReason" not in stored
    assert "finishedOn" not in stored
    assert stream_events(redis_client, queue_name)[-1] == (
        "waiting", {"jobId": job.id, "prev": "failed"})
    proc = await process_all(queue_name, redis_url, redis_client, 1)
    assert proc.done == [job.id]
    assert await call(failed.get_state()) == "completed"


async def test_retry_a_job_that_is_not_failed_raises(anyq: Q) -> None:
    job = await call(anyq.add("x", None))
    with pytest.raises(JobStateError):
        await call(job.retry())
    assert await call(job.get_state()) == "waiting"


async def test_promote_a_delayed_job(anyq: Q, redis_client: redis.Redis,
                                     queue_name: str) -> None:
    job = await call(anyq.add("d", None, delay=3600))
    await call(job.promote())
    assert await call(job.get_state()) == "waiting"
    assert redis_client.zcard(f"bull:{queue_name}:delayed") == 0
    assert job_hash(redis_client, queue_name, job.id)["delay"] == "0"
    assert stream_events(redis_client, queue_name)[-1] == (
        "waiting", {"jobId": job.id, "prev": "delayed"})


async def test_promote_a_delayed_prioritized_job(anyq: Q) -> None:
    job = await call(anyq.add("d", None, delay=3600, priority=5))
    await call(job.promote())
    assert await call(job.get_state()) == "prioritized"


async def test_promote_a_job_that_is_not_delayed_raises(anyq: Q) -> None:
    job = await call(anyq.add("x", None))
    with pytest.raises(JobStateError) as info:
        await call(job.promote())
    assert isinstance(info.value, JobError)
    assert info.value.job_id == job.id
    assert await call(job.get_state()) == "waiting"


async def test_promote_a_missing_job_raises(anyq: Q) -> None:
    job = await call(anyq.add("x", None, delay=60))
    await call(job.remove())
    with pytest.raises(JobNotFoundError):
        await call(job.promote())


async def test_wait_until_finished_returns_the_return_value(
        anyq: Q, redis_url: str, queue_name: str) -> None:
    job = await call(anyq.add("x", {"n": 21}))
    waiter = wait_task(anyq, job, 5)
    proc = Holder(result=lambda j: {"double": j.data["n"] * 2})
    async with worker(queue_name, redis_url, proc):
        assert await asyncio.wait_for(waiter, 6) == {"double": 42}
    assert job.return_value == {"double": 42}
    assert await call(job.get_state()) == "completed"


def blocked_in_xread(r: redis.Redis) -> bool:
    return any(c.get("cmd") == "xread" and "b" in c.get("flags", "") for c in r.client_list())


async def test_wait_until_finished_refreshes_the_job(
        anyq: Q, redis_client: redis.Redis, redis_url: str, queue_name: str) -> None:
    job = await call(anyq.add("hold", None))
    proc = Holder(hold={"hold"}, result=lambda j: "r")
    async with worker(queue_name, redis_url, proc):
        await await_until(lambda: job.id in proc.started, what="job active")
        waiter = wait_task(anyq, job, 5)
        await await_until(lambda: blocked_in_xread(redis_client), what="waiter blocked")
        proc.release.set()
        assert await asyncio.wait_for(waiter, 6) == "r"
    stored = await call(anyq.get_job(job.id))
    assert stored.finished_on is not None
    assert job.finished_on == stored.finished_on
    assert job.attempts_made == stored.attempts_made == 1


async def test_wait_until_finished_on_an_already_completed_job(
        anyq: Q, redis_client: redis.Redis, redis_url: str, queue_name: str) -> None:
    job = await call(anyq.add("x", None))
    await process_all(queue_name, redis_url, redis_client, 1, Holder(result=lambda j: "done"))
    assert await asyncio.wait_for(wait_task(anyq, job, 2), 3) == "done"


async def test_wait_until_finished_raises_for_a_failed_job(
        anyq: Q, redis_url: str, queue_name: str) -> None:
    job = await call(anyq.add("bad", None))
    waiter = wait_task(anyq, job, 5)
    async with worker(queue_name, redis_url, Holder(fail={"bad"})):
        with pytest.raises(JobFailedError) as info:
            await asyncio.wait_for(waiter, 6)
    assert info.value.failed_reason == f"boom {job.id}"
    assert info.value.job_id == job.id
    assert job.failed_reason == f"boom {job.id}"


async def test_wait_until_finished_times_out(anyq: Q) -> None:
    job = await call(anyq.add("nobody-takes-me", None))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(wait_task(anyq, job, 0.2), 3)
    assert loop.time() - started < 2
    assert await call(job.get_state()) == "waiting"


async def test_wait_until_finished_accepts_timedelta(anyq: Q) -> None:
    job = await call(anyq.add("x", None))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(wait_task(anyq, job, timedelta(milliseconds=100)), 3)


async def test_datetimes_are_utc_aware(anyq: Q, redis_client: redis.Redis, queue_name: str,
                                       redis_url: str) -> None:
    job = await call(anyq.add("x", None))
    assert job.timestamp.utcoffset() == timedelta(0)
    assert job.processed_on is None
    assert job.finished_on is None
    await process_all(queue_name, redis_url, redis_client, 1)
    done = await call(anyq.get_job(job.id))
    for moment in (done.timestamp, done.processed_on, done.finished_on):
        assert moment.tzinfo is not None
        assert moment.utcoffset() == timedelta(0)
    stored = job_hash(redis_client, queue_name, job.id)
    assert int(done.finished_on.timestamp() * 1000) == int(stored["finishedOn"])
    assert int(done.processed_on.timestamp() * 1000) == int(stored["processedOn"])


async def test_job_attributes_after_completion(anyq: Q, redis_client: redis.Redis,
                                               queue_name: str, redis_url: str) -> None:
    job = await call(anyq.add("x", {"in": 1}, attempts=3, delay=0, priority=0))
    await process_all(queue_name, redis_url, redis_client, 1,
                      Holder(result=lambda j: ["out", j.data["in"]]))
    done = await call(anyq.get_job(job.id))
    assert done.return_value == ["out", 1]
    assert done.attempts_made == 1
    assert done.attempts_started == 1
    assert done.failed_reason is None
    assert done.attempts == 3
    assert done.id == job.id and done.name == "x" and done.data == {"in": 1}
    assert done.queue_name == queue_name
    assert json.loads(job_hash(redis_client, queue_name, job.id)["returnvalue"]) == ["out", 1]


def test_decoded_opts_are_shared_only_as_copies() -> None:
    """The worker's opts cache: a job that changes its opts dict does not
    change the next job's, and nested options are decoded each time."""
    from pyqueue._jsontext import _FLAT_OPTS
    from pyqueue._jsontext import decode_opts_text as _decode_opts_text

    flat = '{"attempts":3,"delay":0,"test-cache":1}'
    first = _decode_opts_text(flat)
    first["attempts"] = 99
    second = _decode_opts_text(flat)
    assert second == {"attempts": 3, "delay": 0, "test-cache": 1}
    assert flat in _FLAT_OPTS and second is not _FLAT_OPTS[flat]

    nested = '{"backoff":{"type":"fixed","delay":5},"test-cache":2}'
    one = _decode_opts_text(nested)
    one["backoff"]["delay"] = 7
    assert _decode_opts_text(nested)["backoff"]["delay"] == 5
    assert nested not in _FLAT_OPTS
