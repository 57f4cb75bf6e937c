"""pyqueue: ``AsyncQueue`` producer, one asyncio ``Worker`` with an ``async def`` no-op."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from benchmarks.common import (
    JOB_NAME,
    PAYLOAD,
    Args,
    Channel,
    LatencyProbe,
    Tracker,
    atimed_loop,
    batches,
    latency_loop,
    run_adapter,
)
from pyqueue import AsyncQueue, Worker


async def enqueue_single(args: Args, ch: Channel) -> dict[str, Any]:
    async with AsyncQueue(args.queue, connection=args.url) as queue:
        await queue.get_job_counts("waiting")  # connect and load the scripts first
        await ch.acheckpoint("start")
        out = await atimed_loop(args, lambda: queue.add(JOB_NAME, PAYLOAD))
        await ch.acheckpoint("end")
    return out


def _bulk(n: int) -> list[dict[str, Any]]:
    return [{"name": JOB_NAME, "data": PAYLOAD}] * n


async def enqueue_bulk(args: Args, ch: Channel) -> dict[str, Any]:
    async with AsyncQueue(args.queue, connection=args.url) as queue:
        await queue.get_job_counts("waiting")
        await ch.acheckpoint("start")
        t0 = time.perf_counter()
        done = 0
        for size in batches(args.jobs, args.batch):
            await queue.add_bulk(_bulk(size))
            done += size
            if time.perf_counter() - t0 > args.deadline:
                break
        seconds = time.perf_counter() - t0
        await ch.acheckpoint("end")
    return {"jobs": done, "seconds": seconds}


async def process(args: Args, ch: Channel) -> dict[str, Any]:
    async with AsyncQueue(args.queue, connection=args.url) as queue:
        for size in batches(args.jobs, args.batch):
            await queue.add_bulk(_bulk(size))
    tracker = Tracker(args.jobs)
    finished = asyncio.Event()
    tracker.on_target(finished.set)

    async def noop(job: Any) -> None:
        tracker.started()

    worker = Worker(args.queue, noop, connection=args.url, concurrency=args.concurrency,
                    autorun=False)
    worker.on("completed", lambda job, result: tracker.done())
    await ch.acheckpoint("start")
    launched = time.perf_counter()
    await worker.start()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(finished.wait(), args.deadline)
    out = tracker.outcome(launched)
    await ch.acheckpoint("end")
    await worker.close(force=True)
    return out


async def latency(args: Args, ch: Channel) -> dict[str, Any]:
    probe = LatencyProbe()

    async def noop(job: Any) -> None:
        probe.hit()

    async with AsyncQueue(args.queue, connection=args.url) as queue:
        worker = Worker(args.queue, noop, connection=args.url, autorun=False)
        await worker.start()
        await queue.get_job_counts("waiting")
        await asyncio.sleep(0.2)  # let the worker reach its blocking wait
        await ch.acheckpoint("start")
        out = await latency_loop(args, lambda: queue.add(JOB_NAME, PAYLOAD), probe)
        await ch.acheckpoint("end")
        await worker.close(force=True)
    return out


if __name__ == "__main__":
    run_adapter(globals())
