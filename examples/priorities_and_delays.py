"""Processing order: priorities, lifo, delays; idempotent job ids and deduplication.

Run:  REDIS_URL=redis://localhost:6379/0 python examples/priorities_and_delays.py

Jobs are added before the worker starts, then one worker with concurrency=1
takes them one at a time and the script prints the order.
"""

import asyncio
import os

from pyqueue import AsyncQueue, Job, Worker

REDIS_URL = os.environ.get("REDIS_URL")  # None: pyqueue's default
QUEUE = "priorities-and-delays"


async def main() -> None:
    async with AsyncQueue(QUEUE, connection=REDIS_URL) as queue:
        await queue.add("plain-1", {})
        await queue.add("plain-2", {})
        await queue.add("lifo", {}, lifo=True)          # before older priority-0 jobs
        await queue.add("priority-5", {}, priority=5)
        await queue.add("priority-1", {}, priority=1)   # 1 is the highest priority
        await queue.add("delayed", {}, delay=0.5)       # seconds
        promoted = await queue.add("promoted", {}, delay=3600)
        await promoted.promote()                        # ready now after all

        # One round trip for many jobs; same option names as add().
        await queue.add_bulk([
            {"name": "bulk-a", "data": {"n": 1}},
            {"name": "bulk-b", "data": {"n": 2}, "opts": {"priority": 3}},
        ])

        # Idempotent enqueue: a taken job_id returns the existing job, adds nothing.
        first = await queue.add("report", {"day": "2024-05-01"}, job_id="report-2024-05-01")
        again = await queue.add("report", {"day": "ignored"}, job_id="report-2024-05-01")
        print("same job:", first.id == again.id, again.data)

        # Deduplication: while the job owning the id is not finished (or within
        # the ttl), adds with the same deduplication id are ignored.
        d1 = await queue.add("sync-user", {"v": 1}, deduplication={"id": "user-7"})
        d2 = await queue.add("sync-user", {"v": 2}, deduplication={"id": "user-7"})
        print("deduplicated:", d1.id == d2.id, d2.data)

        print("counts:", await queue.get_job_counts("waiting", "prioritized", "delayed"))

        order: list[str] = []

        async def record(job: Job) -> None:
            order.append(job.name)

        async with Worker(QUEUE, record, connection=REDIS_URL, concurrency=1):
            while len(order) < 11:
                await asyncio.sleep(0.05)
        print("order:", order)
        await queue.obliterate(force=True)  # clean up the example's keys


if __name__ == "__main__":
    asyncio.run(main())
