"""Shared helpers for test_queue/test_job/test_events/test_validation.

``anyq`` is a ``Queue`` or an ``AsyncQueue`` (parametrized), and ``call``
resolves the result of any of their methods (or of a job's method), so one
test body covers both fronts.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis

from pyqueue import AsyncQueue, Job, Queue, Worker

DEADLINE = 5.0


async def call(value: Any) -> Any:
    """The value itself, or what it resolves to when it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


def is_async(queue: Queue | AsyncQueue) -> bool:
    return isinstance(queue, AsyncQueue)


@pytest.fixture(params=["sync", "async"])
async def anyq(request: pytest.FixtureRequest, redis_url: str,
               queue_name: str) -> AsyncIterator[Queue | AsyncQueue]:
    """A ``Queue`` or an ``AsyncQueue`` on the test's queue."""
    if request.param == "sync":
        queue: Queue | AsyncQueue = Queue(queue_name, connection=redis_url)
    else:
        queue = AsyncQueue(queue_name, connection=redis_url)
    try:
        yield queue
    finally:
        await call(queue.close())


@pytest.fixture
def sq(redis_url: str, queue_name: str) -> Any:
    """A sync ``Queue`` on the test's queue."""
    with Queue(queue_name, connection=redis_url) as queue:
        yield queue


def run_script(client: redis.Redis, keys: Any, name: str, **params: Any) -> Any:
    """Run one of pyqueue's scripts directly (as a worker would), at the server's time."""
    from pyqueue import _scripts as S

    key_list = keys.all()
    secs, micros = client.time()
    return client.eval(S.load(name).source, len(key_list), *key_list, keys.base,
                       secs * 1000 + micros // 1000, S.pack(params))


def wait_until(predicate: Callable[[], Any], timeout: float = DEADLINE,
               what: str = "condition") -> Any:
    """Poll ``predicate`` (sync) until it is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


async def await_until(predicate: Callable[[], Any], timeout: float = DEADLINE,
                      what: str = "condition") -> Any:
    """Poll ``predicate`` (sync or async) until truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await call(predicate())
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def job_hash(r: redis.Redis, queue_name: str, job_id: str) -> dict[str, str]:
    """A job's stored hash, decoded."""
    return {text(k): text(v) for k, v in r.hgetall(f"bull:{queue_name}:{job_id}").items()}


def stream_events(r: redis.Redis, queue_name: str) -> list[tuple[str, dict[str, str]]]:
    """The queue's events stream as ``[(event name, other fields)]``."""
    out = []
    for _id, fields in r.xrange(f"bull:{queue_name}:events"):
        decoded = {text(k): text(v) for k, v in fields.items()}
        name = decoded.pop("event")
        out.append((name, decoded))
    return out


def event_names(r: redis.Redis, queue_name: str) -> list[str]:
    return [name for name, _ in stream_events(r, queue_name)]


def queue_keys(r: redis.Redis, queue_name: str) -> list[str]:
    return sorted(text(k) for k in r.keys(f"bull:{queue_name}:*"))


class Holder:
    """An async processor that records jobs and can hold them active.

    ``hold`` (a set of job names) makes the processor wait on ``release``;
    ``fail`` (job names) makes it raise; otherwise it returns ``result(job)``.
    """

    def __init__(self, hold: set[str] | None = None, fail: set[str] | None = None,
                 result: Callable[[Job], Any] | None = None) -> None:
        self.hold = hold or set()
        self.fail = fail or set()
        self.result = result or (lambda job: {"ok": job.id})
        self.release = asyncio.Event()
        self.started: list[str] = []
        self.done: list[str] = []

    async def __call__(self, job: Job) -> Any:
        self.started.append(job.id)
        try:
            if job.name in self.hold:
                await self.release.wait()
            if job.name in self.fail:
                raise RuntimeError(f"boom {job.id}")
            return self.result(job)
        finally:
            self.done.append(job.id)


def worker(queue_name: str, redis_url: str, processor: Callable[[Job], Awaitable[Any]],
           **options: Any) -> Worker:
    """A worker that closes fast (short idle block) for tests."""
    options.setdefault("drain_delay", 0.2)
    options.setdefault("shutdown_grace", 2)
    return Worker(queue_name, processor, connection=redis_url, **options)


async def process_all(queue_name: str, redis_url: str, r: redis.Redis, count: int,
                      processor: Holder | None = None, **options: Any) -> Holder:
    """Run a worker until ``count`` jobs have finished (completed or failed)."""
    proc = processor or Holder()
    async with worker(queue_name, redis_url, proc, **options):
        await await_until(
            lambda: r.zcard(f"bull:{queue_name}:completed")
            + r.zcard(f"bull:{queue_name}:failed") >= count,
            what=f"{count} finished jobs",
        )
    return proc
