"""Checked by mypy in tests/test_processor_typing.py (never run): how processors type-check.

A line that must be flagged ends with ``# error: <mypy error code>``; every other
line must type-check.
"""

from __future__ import annotations

from typing import Any

from pyqueue import AsyncJob, Job, Worker, WorkerHooks
from pyqueue.job import JobBase


async def async_processor(job: AsyncJob) -> int:
    await job.update_progress(1)
    await job.log("half way")
    return len(await job.get_logs())


def def_processor(job: Job) -> int:
    job.update_progress(1)
    return job.log("half way")


async def forgets_await(job: AsyncJob) -> None:
    job.update_progress(1)  # error: unused-coroutine


def awaits_nothing(job: Job) -> None:
    job.update_progress(1)


async def async_processor_typed_job(job: Job) -> None:  # older code: still accepted
    job.update_progress(1)


def def_processor_typed_async_job(job: AsyncJob) -> None:
    return None


class Subclass(Worker):
    async def process(self, job: AsyncJob) -> Any:
        await job.update_progress(1)


class SyncSubclass(Worker):
    def process(self, job: Job) -> Any:  # a def override runs in a thread
        job.update_progress(1)


class Hooks(WorkerHooks):
    def before_process(self, job: JobBase) -> None:
        print(job.id, job.name, job.data)


Worker("q", async_processor)
Worker("q", def_processor)
Worker("q", async_processor_typed_job)
Worker("q", def_processor_typed_async_job)  # error: arg-type
Worker("q", hooks=[Hooks()], processor=lambda job: None)
