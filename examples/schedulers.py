"""Job schedulers: an ``every`` scheduler with a limit, and a 6-field cron one.

Run:  REDIS_URL=redis://localhost:6379/0 python examples/schedulers.py

A scheduler keeps exactly one pending (delayed) job; the worker that takes a
run creates the next one. The script lets a worker run for about 4 seconds,
prints every run, lists the schedulers, removes them and cleans up.
"""

import asyncio
import os
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from pyqueue import AsyncQueue, Job, Worker

REDIS_URL = os.environ.get("REDIS_URL")  # None: pyqueue's default
QUEUE = "schedulers-example"
RUN_FOR = 4.0  # seconds of runs
BERLIN = ZoneInfo("Europe/Berlin")

start = time.monotonic()


def now() -> str:
    return f"+{time.monotonic() - start:4.1f}s"


async def process(job: Job) -> None:
    wall = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    print(f"{now()}  run  {job.name:<9} id={job.id:<34} data={job.data}  (UTC {wall})")


async def main() -> None:
    global start
    async with AsyncQueue(QUEUE, connection=REDIS_URL) as queue:
        await queue.obliterate(force=True)  # start from an empty queue

        # Every second, three runs in all; the job's name defaults to the id.
        first = await queue.upsert_job_scheduler("tick", every=1, limit=3)
        print("tick: pending run", first.id)

        # Cron with seconds first: every 2 seconds, computed in Berlin time.
        first = await queue.upsert_job_scheduler(
            "berlin-report", pattern="*/2 * * * * *", tz="Europe/Berlin",
            template={"name": "report", "data": {"city": "Berlin"},
                      "opts": {"attempts": 2, "remove_on_complete": 10}},
        )
        print("berlin-report: pending run", first.id)

        start = time.monotonic()
        async with Worker(QUEUE, process, connection=REDIS_URL, concurrency=2):
            await asyncio.sleep(RUN_FOR)

        # The schedulers stay listed after their limit (as in BullMQ) until removed.
        # iteration_count counts the runs created, the pending one included.
        print("\nget_job_schedulers():")
        for s in await queue.get_job_schedulers():
            when = s["pattern"] or f"every {s['every']}s"
            next_run = s["next"].astimezone(BERLIN).strftime("%H:%M:%S.%f")[:-3]
            print(f"  {s['id']:<14} name={s['name']:<7} {when:<15} tz={s['tz']} "
                  f"limit={s['limit']} iterations={s['iteration_count']} "
                  f"next={next_run} Berlin  template={s['template']}")

        for scheduler_id in ("tick", "berlin-report"):
            print("remove", scheduler_id, "->", await queue.remove_job_scheduler(scheduler_id))
        print("left:", await queue.get_job_schedulers(),
              "delayed:", (await queue.get_job_counts("delayed"))["delayed"])
        await queue.obliterate(force=True)  # clean up the example's keys


if __name__ == "__main__":
    asyncio.run(main())
