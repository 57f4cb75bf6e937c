"""The official Python port of BullMQ (pip ``bullmq``): ``Queue`` / ``Worker``, asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bullmq import Queue, Worker

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


def _opts(args: Args) -> dict[str, Any]:
    return {"connection": args.url}


def _bulk(n: int) -> list[dict[str, Any]]:
    return [{"name": JOB_NAME, "data": PAYLOAD} for _ in range(n)]


async def enqueue_single(args: Args, ch: Channel) -> dict[str, Any]:
    queue = Queue(args.queue, _opts(args))
    await queue.getJobCounts("waiting")
    await ch.acheckpoint("start")
    out = await atimed_loop(args, lambda: queue.add(JOB_NAME, PAYLOAD))
    await ch.acheckpoint("end")
    await queue.close()
    return out


async def enqueue_bulk(args: Args, ch: Channel) -> dict[str, Any]:
    queue = Queue(args.queue, _opts(args))
    await queue.getJobCounts("waiting")
    await ch.acheckpoint("start")
    t0 = time.perf_counter()
    done = 0
    for size in batches(args.jobs, args.batch):
        await queue.addBulk(_bulk(size))
        done += size
        if time.perf_counter() - t0 > args.deadline:
            break
    seconds = time.perf_counter() - t0
    await ch.acheckpoint("end")
    await queue.close()
    return {"jobs": done, "seconds": seconds}


async def process(args: Args, ch: Channel) -> dict[str, Any]:
    queue = Queue(args.queue, _opts(args))
    for size in batches(args.jobs, args.batch):
        await queue.addBulk(_bulk(size))
    await queue.close()
    tracker = Tracker(args.jobs)
    finished = asyncio.Event()
    tracker.on_target(finished.set)

    async def noop(job: Any, token: str) -> None:
        tracker.started()

    await ch.acheckpoint("start")
    launched = time.perf_counter()
    worker = Worker(args.queue, noop, {**_opts(args), "concurrency": args.concurrency})
    worker.on("completed", lambda job, result: tracker.done())
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(finished.wait(), args.deadline)
    out = tracker.outcome(launched)
    await ch.acheckpoint("end")
    await worker.close(force=True)
    return out


async def latency(args: Args, ch: Channel) -> dict[str, Any]:
    probe = LatencyProbe()

    async def noop(job: Any, token: str) -> None:
        probe.hit()

    queue = Queue(args.queue, _opts(args))
    worker = Worker(args.queue, noop, {**_opts(args), "concurrency": 1})
    await queue.getJobCounts("waiting")
    await asyncio.sleep(0.3)
    await ch.acheckpoint("start")
    out = await latency_loop(args, lambda: queue.add(JOB_NAME, PAYLOAD), probe)
    await ch.acheckpoint("end")
    await worker.close(force=True)
    await queue.close()
    return out


if __name__ == "__main__":
    run_adapter(globals())
