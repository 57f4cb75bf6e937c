"""Deduplication: simple, throttle (ttl), debounce (replace), keep_last_if_active.

Run:  REDIS_URL=redis://localhost:6379/0 python examples/deduplication.py

A worker runs throughout and prints every job it runs; each section prints
what each ``add`` returned, so you can see which adds created a job.
"""

import asyncio
import os
import time

from pyqueue import AsyncQueue, Job, Worker

REDIS_URL = os.environ.get("REDIS_URL")  # None: pyqueue's default
QUEUE = "deduplication-example"

start = time.monotonic()
ran: list[tuple[str, dict]] = []


def now() -> str:
    return f"+{time.monotonic() - start:4.2f}s"


async def process(job: Job) -> None:
    print(f"{now()}    ran {job.name} id={job.id} data={job.data}")
    await asyncio.sleep(job.data.get("work", 0.05))
    ran.append((job.name, job.data))


def runs(name: str) -> list[dict]:
    return [data for job_name, data in ran if job_name == name]


async def wait_for_runs(name: str, n: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while len(runs(name)) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def main() -> None:
    async with AsyncQueue(QUEUE, connection=REDIS_URL) as queue:
        await queue.obliterate(force=True)  # start from an empty queue
        async with Worker(QUEUE, process, connection=REDIS_URL, concurrency=5):

            print("1. simple: the id is taken until the owning job finishes")
            first = await queue.add("sync-user", {"v": 1, "work": 0.5},
                                    deduplication={"id": "user-7"})
            second = await queue.add("sync-user", {"v": 2}, deduplication={"id": "user-7"})
            print(f"{now()}  first={first.id} second={second.id} same job: "
                  f"{first.id == second.id}, data {second.data}")
            owner = await queue.get_deduplication_job_id("user-7")
            print(f"{now()}  get_deduplication_job_id('user-7') -> {owner}")
            await first.wait_until_finished(timeout=5)
            third = await queue.add("sync-user", {"v": 3}, deduplication={"id": "user-7"})
            print(f"{now()}  after it finished: third={third.id} (a new job)")
            await wait_for_runs("sync-user", 2)

            print("\n2. throttle: ttl=1, at most one job per second however often we add")
            created = []
            for i in range(9):  # an add every 0.25 s for 2 s
                job = await queue.add("refresh-feed", {"i": i},
                                      deduplication={"id": "feed", "ttl": 1})
                new = job.id not in created
                if new:
                    created.append(job.id)
                print(f"{now()}  add i={i} -> job {job.id}{'  (new)' if new else ''}")
                await asyncio.sleep(0.25)
            await wait_for_runs("refresh-feed", len(created))
            print(f"{now()}  9 adds, {len(created)} jobs ran:",
                  [d["i"] for d in runs("refresh-feed")])

            print("\n3. debounce: replace + delay=1, only the last add of a burst runs")
            for i in range(5):  # a burst of five adds, 0.1 s apart
                job = await queue.add("reindex", {"i": i}, delay=1,
                                      deduplication={"id": "search", "replace": True})
                print(f"{now()}  add i={i} -> job {job.id}")
                await asyncio.sleep(0.1)
            await wait_for_runs("reindex", 1)
            await asyncio.sleep(0.2)  # nothing else runs
            print(f"{now()}  reindex runs:", [d["i"] for d in runs("reindex")])

            print("\n4. keep_last_if_active: adds during a run are kept (the last wins)")
            dedup = {"id": "export", "keep_last_if_active": True}
            running = await queue.add("export", {"v": 1, "work": 0.6}, deduplication=dedup)
            while await running.get_state() != "active":
                await asyncio.sleep(0.02)
            for v in (2, 3, 4):
                job = await queue.add("export", {"v": v}, deduplication=dedup)
                print(f"{now()}  add v={v} while job {running.id} is active -> job {job.id}")
            await wait_for_runs("export", 2)
            await asyncio.sleep(0.2)  # nothing else runs
            print(f"{now()}  export runs:", [d["v"] for d in runs("export")])

        await queue.obliterate(force=True)  # clean up the example's keys


if __name__ == "__main__":
    asyncio.run(main())
