"""Queue.cancel_job against a real Redis: jobs that are not running (waiting,
delayed, prioritized, grouped), running jobs (async and def processors, in
this process and in another one), finished and unknown jobs, remove=True.

No sleeps as synchronisation: processors set events, the test waits on them
or polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis
from _group_app import GroupApps
from _worker_helpers import wait_event, wait_for, wait_for_sync

from pyqueue import AsyncQueue, Job, JobCancelledError, JobNotFoundError, Queue, Worker


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


async def state_is(queue: AsyncQueue, job_id: str, *states: str) -> bool:
    return await queue.get_job_state(job_id) in states


# --------------------------------------------------------------------------- not running

KINDS = {
    "waiting": ({}, "waiting"),
    "delayed": ({"delay": 60}, "delayed"),
    "prioritized": ({"priority": 5}, "prioritized"),
    "grouped": ({"group": "g"}, "waiting"),
    "grouped-delayed": ({"group": "g", "delay": 60}, "delayed"),
}


@pytest.mark.parametrize("remove", [False, True], ids=["fail", "remove"])
@pytest.mark.parametrize("kind", list(KINDS))
async def test_cancel_a_job_that_is_not_running(
    queue_name: str, queue: AsyncQueue, redis_client: redis.Redis, kind: str, remove: bool
) -> None:
    opts, before = KINDS[kind]
    job = await queue.add("j", {"x": 1}, attempts=3, **opts)
    other = await queue.add("j", {"x": 2}, **opts)
    assert await queue.get_job_state(job.id) == before

    assert await queue.cancel_job(job.id, "user gave up", remove=remove) == "cancelled"

    if remove:
        assert await queue.get_job_state(job.id) == "unknown"
        assert await queue.get_job(job.id) is None
        assert redis_client.exists(f"bull:{queue_name}:{job.id}") == 0
    else:
        assert await queue.get_job_state(job.id) == "failed"
        stored = await queue.get_job(job.id)
        assert stored is not None
        assert stored.failed_reason == "user gave up"
        assert stored.finished_on is not None
    counts = await queue.get_job_counts(before, "failed")
    # Only the cancelled job left its state; the other one is untouched.
    assert counts[before] == 1
    assert counts["failed"] == (0 if remove else 1)
    assert await queue.get_job_state(other.id) == before


async def test_a_cancelled_waiting_job_never_runs(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    cancelled = await queue.add("cancelled", {}, group="g")
    plain = await queue.add("cancelled", {})
    marker = await queue.add("marker", {}, group="g")
    assert await queue.cancel_job(cancelled.id) == "cancelled"
    assert await queue.cancel_job(plain.id) == "cancelled"
    ran: list[str] = []

    async def process(job: Job) -> Any:
        ran.append(job.name)

    async with worker(queue_name, process, redis_url):
        await marker.wait_until_finished(timeout=10)
    assert ran == ["marker"]
    stored = await queue.get_job(cancelled.id)
    assert stored is not None and stored.failed_reason == "cancelled"


# --------------------------------------------------------------------------- running


async def test_cancel_a_running_async_job(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    running = asyncio.Event()
    saw: list[str] = []
    failed: list[BaseException] = []
    runs = 0

    async def process(job: Job) -> Any:
        nonlocal runs
        runs += 1
        running.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            saw.append("CancelledError")
            raise
        return "not reached"

    w = worker(queue_name, process, redis_url)
    w.on("failed", lambda job, exc: failed.append(exc))
    async with w:
        job = await queue.add("j", {}, attempts=5, backoff=0.01)
        await wait_event(running, what="job running")
        t0 = time.monotonic()
        assert await queue.cancel_job(job.id, "stop it") == "requested"
        await wait_for(lambda: state_is(queue, job.id, "failed"), timeout=5, what="failed")
        latency = time.monotonic() - t0
        # No retry even though attempts were left: it stays failed.
        assert await queue.get_job_state(job.id) == "failed"
    assert latency < 2.0
    assert saw == ["CancelledError"]
    assert runs == 1
    assert len(failed) == 1 and isinstance(failed[0], JobCancelledError)
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.failed_reason == "stop it"
    assert stored.attempts_made == 1
    assert await queue.cancel_job(job.id) == "finished"


async def test_cancel_a_running_def_job_sets_cancel_requested(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    running = threading.Event()
    seen: list[bool] = []

    def process(job: Job) -> Any:
        running.set()
        seen.append(job.cancel_requested.wait(10))
        return "stopped early"  # returns normally: the job still ends failed

    async with worker(queue_name, process, redis_url):
        job = await queue.add("j", {}, attempts=3)
        await wait_for(running.is_set, what="job running")
        t0 = time.monotonic()
        assert await queue.cancel_job(job.id, "no longer needed") == "requested"
        await wait_for(lambda: state_is(queue, job.id, "failed"), timeout=5, what="failed")
        latency = time.monotonic() - t0
    assert seen == [True]
    assert latency < 2.0
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.failed_reason == "no longer needed"
    assert stored.return_value is None


async def test_cancel_a_running_job_with_remove(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    running = asyncio.Event()

    async def process(job: Job) -> Any:
        running.set()
        await asyncio.sleep(60)

    async with worker(queue_name, process, redis_url):
        job = await queue.add("j", {}, attempts=2)
        await wait_event(running, what="job running")
        assert await queue.cancel_job(job.id, remove=True) == "requested"
        await wait_for(lambda: state_is(queue, job.id, "unknown"), timeout=5, what="gone")
    assert await queue.get_job(job.id) is None
    assert redis_client.exists(f"bull:{queue_name}:{job.id}") == 0
    counts = await queue.get_job_counts("failed", "active", "waiting")
    assert counts == {"failed": 0, "active": 0, "waiting": 0}
    assert redis_client.scard(f"bull:{queue_name}:pq:cancel") == 0


async def test_cancelling_a_running_grouped_job_frees_its_group_slot(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    await queue.set_group_concurrency(1, group="g")
    started: list[str] = []

    async def process(job: Job) -> Any:
        started.append(job.id)
        if job.name == "hang":
            await asyncio.sleep(60)
        return "ok"

    async with worker(queue_name, process, redis_url, concurrency=3):
        hang = await queue.add("hang", {}, group="g")
        after = await queue.add("after", {}, group="g")
        await wait_for(lambda: started == [hang.id], what="first job running")
        assert await queue.cancel_job(hang.id) == "requested"
        assert await after.wait_until_finished(timeout=5) == "ok"
    assert await queue.get_job_state(hang.id) == "failed"
    assert await queue.get_group_counts() == {}


async def test_cancel_from_another_process_than_the_worker(
    redis_url: str, queue_name: str, tmp_path: Any
) -> None:
    apps = GroupApps(queue_name, redis_url, 1, tmp_path, concurrency=2)
    q = Queue(queue_name, connection=redis_url)
    try:
        keep = q.add("j", {"hold": 60}, attempts=3)
        gone = q.add("j", {"hold": 60}, attempts=3)

        def both_started() -> bool:
            apps.check_alive()
            return len(apps.starts()) == 2
        wait_for_sync(both_started, timeout=20, what="both jobs running in the subprocess")
        t0 = time.monotonic()
        assert q.cancel_job(keep.id, "cancelled by the operator") == "requested"
        assert q.cancel_job(gone.id, remove=True) == "requested"
        wait_for_sync(lambda: q.get_job_state(keep.id) == "failed", timeout=5, what="failed")
        wait_for_sync(lambda: q.get_job_state(gone.id) == "unknown", timeout=5, what="removed")
        latency = time.monotonic() - t0
        assert apps.cancelled(keep.id) and apps.cancelled(gone.id)
        stored = q.get_job(keep.id)
        assert stored is not None
        assert stored.failed_reason == "cancelled by the operator"
        assert stored.attempts_made == 1
        assert q.get_job(gone.id) is None
        assert latency < 2.0
        # The worker goes on with new work.
        nxt = q.add("j", {"hold": 0})
        assert nxt.wait_until_finished(timeout=10)["pid"] == apps.procs[0].pid
    finally:
        apps.close()
        q.close()


# --------------------------------------------------------------------------- finished, unknown


async def test_cancel_a_finished_job_changes_nothing(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    async def process(job: Job) -> Any:
        if job.name == "bad":
            raise ValueError("it broke")
        return {"done": True}

    async with worker(queue_name, process, redis_url):
        good = await queue.add("good", {})
        bad = await queue.add("bad", {})
        assert await good.wait_until_finished(timeout=10) == {"done": True}
        await wait_for(lambda: state_is(queue, bad.id, "failed"), what="bad failed")
    before = {j: (await queue.get_job(j)).fields for j in (good.id, bad.id)}  # type: ignore[union-attr]
    assert await queue.cancel_job(good.id, "too late") == "finished"
    assert await queue.cancel_job(bad.id, "too late", remove=True) == "finished"
    for job_id, fields in before.items():
        stored = await queue.get_job(job_id)
        assert stored is not None and stored.fields == fields
    assert await queue.get_job_state(good.id) == "completed"
    assert await queue.get_job_state(bad.id) == "failed"


async def test_cancel_an_unknown_job_raises(queue: AsyncQueue, redis_url: str,
                                            queue_name: str) -> None:
    with pytest.raises(JobNotFoundError):
        await queue.cancel_job("no-such-job")
    with Queue(queue_name, connection=redis_url) as q, pytest.raises(JobNotFoundError):
        q.cancel_job("12345")


async def test_cancel_reason_must_be_a_non_empty_str(queue: AsyncQueue) -> None:
    job = await queue.add("j", {})
    for bad in ("", None, 5):
        with pytest.raises((ValueError, TypeError), match="reason"):
            await queue.cancel_job(job.id, bad)  # type: ignore[arg-type]
    assert await queue.get_job_state(job.id) == "waiting"


# --------------------------------------------------------------------------- reacting by raising


@pytest.mark.parametrize("kind", ["def", "async"])
async def test_a_processor_that_reacts_to_cancellation_by_raising_is_not_retried(
    redis_url: str, queue_name: str, queue: AsyncQueue, kind: str
) -> None:
    running = threading.Event()
    runs: list[int] = []

    def sync_process(job: Job) -> Any:
        runs.append(job.attempts_made)
        running.set()
        if job.attempts_made == 0 and job.cancel_requested.wait(10):
            raise RuntimeError("aborted: cancellation requested")
        return "ran to the end"

    async def async_process(job: Job) -> Any:
        runs.append(job.attempts_made)
        running.set()
        try:
            await asyncio.sleep(10 if job.attempts_made == 0 else 0)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup after cancellation failed") from None
        return "ran to the end"

    process = sync_process if kind == "def" else async_process
    async with worker(queue_name, process, redis_url):
        job = await queue.add("j", {}, attempts=3)
        await wait_for(running.is_set, what="job running")
        assert await queue.cancel_job(job.id, "stop") == "requested"
        await wait_for(lambda: state_is(queue, job.id, "failed", "completed"), timeout=5,
                       what="job finished")
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert (await queue.get_job_state(job.id), stored.failed_reason, runs) == \
        ("failed", "stop", [0])
