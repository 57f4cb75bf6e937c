"""arq: ``ArqRedis.enqueue_job`` and one ``arq.worker.Worker`` (``max_jobs`` = concurrency).

arq has no bulk enqueue API. Its worker polls the queue (a sorted set) every
``poll_delay`` (0.5 s by default, kept here), which shows in the latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from arq.connections import RedisSettings, create_pool
from arq.worker import Worker

from benchmarks.common import (
    JOB_NAME,
    PAYLOAD,
    Args,
    Channel,
    LatencyProbe,
    Tracker,
    atimed_loop,
    latency_loop,
    run_adapter,
)

UNSUPPORTED = {"enqueue_bulk": "arq has no bulk enqueue API"}


def _settings(args: Args) -> RedisSettings:
    return RedisSettings.from_dsn(args.url)


async def _pool(args: Args) -> Any:
    return await create_pool(_settings(args), default_queue_name=args.queue)


async def enqueue_single(args: Args, ch: Channel) -> dict[str, Any]:
    pool = await _pool(args)
    await pool.ping()
    await ch.acheckpoint("start")
    out = await atimed_loop(args, lambda: pool.enqueue_job(JOB_NAME, PAYLOAD))
    await ch.acheckpoint("end")
    await pool.aclose()
    return out


async def _preload(pool: Any, n: int) -> None:
    sem = asyncio.Semaphore(8)

    async def one() -> None:
        async with sem:
            await pool.enqueue_job(JOB_NAME, PAYLOAD)

    await asyncio.gather(*(one() for _ in range(n)))


async def _stop(worker: Worker, task: asyncio.Future[Any]) -> None:
    task.cancel()
    for running in worker.tasks.values():
        running.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await worker.close()


def _worker(args: Args, fn: Any, concurrency: int, **kw: Any) -> Worker:
    fn.__qualname__ = fn.__name__ = JOB_NAME
    return Worker(
        functions=[fn], queue_name=args.queue, redis_settings=_settings(args),
        max_jobs=concurrency, handle_signals=False, log_results=False, **kw,
    )


async def process(args: Args, ch: Channel) -> dict[str, Any]:
    pool = await _pool(args)
    await _preload(pool, args.jobs)
    await pool.aclose()
    tracker = Tracker(args.jobs)
    finished = asyncio.Event()
    tracker.on_target(finished.set)

    async def noop(ctx: dict[str, Any], data: Any) -> None:
        tracker.started()

    async def after_job_end(ctx: dict[str, Any]) -> None:
        tracker.done()

    worker = _worker(args, noop, args.concurrency, after_job_end=after_job_end)
    await ch.acheckpoint("start")
    launched = time.perf_counter()
    task = asyncio.ensure_future(worker.async_run())
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(finished.wait(), args.deadline)
    out = tracker.outcome(launched)
    await ch.acheckpoint("end")
    await _stop(worker, task)
    return out


async def latency(args: Args, ch: Channel) -> dict[str, Any]:
    probe = LatencyProbe()

    async def noop(ctx: dict[str, Any], data: Any) -> None:
        probe.hit()

    pool = await _pool(args)
    worker = _worker(args, noop, 1)
    task = asyncio.ensure_future(worker.async_run())
    await asyncio.sleep(0.3)
    await ch.acheckpoint("start")
    out = await latency_loop(args, lambda: pool.enqueue_job(JOB_NAME, PAYLOAD), probe)
    await ch.acheckpoint("end")
    await _stop(worker, task)
    await pool.aclose()
    return out


if __name__ == "__main__":
    run_adapter(globals())
