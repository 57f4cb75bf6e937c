"""``Job`` (plain methods) and ``AsyncJob`` (coroutines): who gets which."""

from __future__ import annotations

import inspect

import pytest

from pyqueue import AsyncJob, AsyncQueue, Job, Queue
from pyqueue._keys import QueueKeys
from pyqueue._ops import Clock
from pyqueue.job import Binding, JobBase, make_job

METHODS = ("update_progress", "log", "get_logs", "update_data", "get_state", "remove",
           "retry", "promote", "move_to_delayed", "wait_until_finished", "change_priority",
           "change_delay")


def binding(is_async: bool) -> Binding:
    return Binding(QueueKeys("bull", "types"), Clock(), lambda plan: None, is_async=is_async)


def test_async_job_methods_are_coroutines_and_job_methods_are_not() -> None:
    for name in METHODS:
        assert inspect.iscoroutinefunction(getattr(AsyncJob, name)), name
        assert not inspect.iscoroutinefunction(getattr(Job, name)), name


def test_make_job_and_job_pick_the_class_from_the_binding() -> None:
    fields = {"name": "n", "data": "{}"}
    sync_job = make_job(binding(False), "1", fields, "tok")
    async_job = make_job(binding(True), "2", fields, "tok")
    assert type(sync_job) is Job and type(async_job) is AsyncJob
    # Callers that predate AsyncJob: Job(async binding, ...) is an AsyncJob.
    legacy = Job(binding(True), "3", fields, "tok")
    assert type(legacy) is AsyncJob and legacy.lock_token == "tok" and legacy.id == "3"
    assert type(Job(binding(False), "4", fields)) is Job
    for job in (sync_job, async_job, legacy):
        assert isinstance(job, Job) and isinstance(job, JobBase)
    assert not isinstance(sync_job, AsyncJob)


def test_queue_gives_jobs_and_async_queue_gives_async_jobs(redis_url: str,
                                                           queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as queue:
        job = queue.add("n", {"x": 1})
        assert type(job) is Job
        assert job.get_state() == "waiting"
        fetched = queue.get_job(job.id)
        assert type(fetched) is Job
        assert all(type(j) is Job for j in queue.get_jobs("waiting"))
        assert all(type(j) is Job for j in queue.add_bulk([{"name": "b"}]))


async def test_async_queue_jobs_await(redis_url: str, queue_name: str) -> None:
    async with AsyncQueue(queue_name, connection=redis_url) as queue:
        job = await queue.add("n", {"x": 1})
        assert type(job) is AsyncJob and isinstance(job, Job)
        assert await job.get_state() == "waiting"
        await job.update_data({"x": 2})
        assert job.data == {"x": 2}
        assert await job.remove() is True
        with pytest.raises(Exception, match="JSON"):
            await job.update_progress({1, 2})  # refused before anything is written
        bulk = await queue.add_bulk([{"name": "b"}, {"name": "c"}])
        assert [type(j) for j in bulk] == [AsyncJob, AsyncJob]
        fetched = await queue.get_job(bulk[0].id)
        assert type(fetched) is AsyncJob
