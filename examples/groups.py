"""Groups: per-recipient-domain limits, served round-robin.

Run:  REDIS_URL=redis://localhost:6379/0 python examples/groups.py

gmail.com may have one delivery in flight at a time, yahoo.com may start two
a second, outlook.com has no limit of its own, and some jobs have no group.
The jobs are added one domain after the other, yet one worker with
concurrency=5 interleaves the groups (and the ungrouped jobs) fairly while
keeping each group within its limits. The script prints every start, then
the start times per group.
"""

import asyncio
import os
import time
from collections import defaultdict
from itertools import pairwise

from pyqueue import AsyncQueue, Job, Worker

REDIS_URL = os.environ.get("REDIS_URL")  # None: pyqueue's default
QUEUE = "groups-example"
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com"]
PER_DOMAIN = 4
UNGROUPED = 4
SEND_TIME = 0.3  # seconds each delivery takes

start = time.monotonic()
starts: dict[str, list[float]] = defaultdict(list)
order: list[str] = []


async def deliver(job: Job) -> None:
    at = time.monotonic() - start
    group = job.data.get("group", "ungrouped")
    starts[group].append(at)
    order.append(group)
    print(f"+{at:4.2f}s  start {job.data['to']:<22} group={group}")
    await asyncio.sleep(SEND_TIME)  # pretend to talk to the domain's MX


async def main() -> None:
    global start
    async with AsyncQueue(QUEUE, connection=REDIS_URL) as queue:
        await queue.obliterate(force=True)  # start from an empty queue
        await queue.set_group_concurrency(1, group="gmail.com")    # 1 at a time
        await queue.set_group_rate_limit(2, 1, group="yahoo.com")  # 2 per second

        # Added domain by domain: all of gmail's jobs first.
        jobs = [{"name": "send", "data": {"to": f"user{i}@{domain}", "group": domain},
                 "opts": {"group": domain}}
                for domain in DOMAINS for i in range(PER_DOMAIN)]
        jobs += [{"name": "send", "data": {"to": f"user{i}@example.org"}}
                 for i in range(UNGROUPED)]
        await queue.add_bulk(jobs)
        print("get_group_counts():", await queue.get_group_counts())
        print("get_job_counts():  ", await queue.get_job_counts("waiting", "active"))

        total = len(jobs)
        start = time.monotonic()
        async with Worker(QUEUE, deliver, connection=REDIS_URL, concurrency=5):
            while len(order) < total:
                await asyncio.sleep(0.05)
            await asyncio.sleep(SEND_TIME + 0.1)  # let the last ones finish

        print("\nstart times per group (seconds):")
        for group, times in starts.items():
            gaps = [round(b - a, 2) for a, b in pairwise(times)]
            print(f"  {group:<12} {[round(t, 2) for t in times]}  gaps {gaps}")
        print("order of starts:", " ".join(g.removesuffix(".com") for g in order))
        print("get_group_counts() after:", await queue.get_group_counts())
        await queue.obliterate(force=True)  # clean up the example's keys


if __name__ == "__main__":
    asyncio.run(main())
