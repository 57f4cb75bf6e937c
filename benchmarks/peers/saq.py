"""SAQ: ``Queue.enqueue`` and one ``saq.Worker`` with ``concurrency`` (Redis queue).

SAQ has no bulk enqueue API (``Queue.map`` enqueues one by one and waits for
the results).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from redis import asyncio as aioredis
from saq import Worker
from saq.queue.redis import RedisQueue as Queue

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

UNSUPPORTED = {"enqueue_bulk": "SAQ has no bulk enqueue API"}


async def _queue(args: Args) -> Queue:
    # Each of the worker's ``concurrency`` slots holds a connection in a blocking
    # BLMOVE; redis-py >= 6 caps an asyncio pool at 100 connections by default
    # (and SAQ's ``redis`` extra still pins redis < 8), so raise the cap.
    client = aioredis.from_url(args.url, max_connections=10_000)
    queue = Queue(client, name=args.queue)
    await queue.connect()
    return queue


async def enqueue_single(args: Args, ch: Channel) -> dict[str, Any]:
    queue = await _queue(args)
    await queue.count("queued")
    await ch.acheckpoint("start")
    out = await atimed_loop(args, lambda: queue.enqueue(JOB_NAME, data=PAYLOAD))
    await ch.acheckpoint("end")
    await queue.disconnect()
    return out


async def _preload(queue: Queue, n: int) -> None:
    sem = asyncio.Semaphore(16)

    async def one() -> None:
        async with sem:
            await queue.enqueue(JOB_NAME, data=PAYLOAD)

    await asyncio.gather(*(one() for _ in range(n)))


async def _stop(worker: Worker, task: asyncio.Future[Any]) -> None:
    worker.event.set()
    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
        await asyncio.wait_for(task, 5)


async def process(args: Args, ch: Channel) -> dict[str, Any]:
    queue = await _queue(args)
    await _preload(queue, args.jobs)
    tracker = Tracker(args.jobs)
    finished = asyncio.Event()
    tracker.on_target(finished.set)

    async def noop(ctx: Any, **kwargs: Any) -> None:
        tracker.started()

    async def after_process(ctx: Any) -> None:
        tracker.done()

    worker = Worker(queue, [(JOB_NAME, noop)], concurrency=args.concurrency,
                    after_process=after_process)
    await ch.acheckpoint("start")
    launched = time.perf_counter()
    task = asyncio.ensure_future(worker.start())
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(finished.wait(), args.deadline)
    out = tracker.outcome(launched)
    await ch.acheckpoint("end")
    await _stop(worker, task)
    await queue.disconnect()
    return out


async def latency(args: Args, ch: Channel) -> dict[str, Any]:
    probe = LatencyProbe()

    async def noop(ctx: Any, **kwargs: Any) -> None:
        probe.hit()

    queue = await _queue(args)
    worker = Worker(queue, [(JOB_NAME, noop)], concurrency=1)
    task = asyncio.ensure_future(worker.start())
    await asyncio.sleep(0.3)
    await ch.acheckpoint("start")
    out = await latency_loop(args, lambda: queue.enqueue(JOB_NAME, data=PAYLOAD), probe)
    await ch.acheckpoint("end")
    await _stop(worker, task)
    await queue.disconnect()
    return out


if __name__ == "__main__":
    run_adapter(globals())
