"""Quickstart, asyncio: AsyncQueue as producer, an ``async def`` processor.

Run:  REDIS_URL=redis://localhost:6379/0 python examples/quickstart_async.py
"""

import asyncio
import os

from pyqueue import AsyncJob, AsyncQueue, Worker

REDIS_URL = os.environ.get("REDIS_URL")  # None: pyqueue's default
QUEUE = "quickstart-async"


async def send_email(job: AsyncJob) -> dict:
    """An ``async def`` processor: job methods are awaitables here."""
    await job.update_progress(50)
    await asyncio.sleep(0.1)  # pretend to talk to an SMTP server
    return {"delivered_to": job.data["to"]}


async def main() -> None:
    async with AsyncQueue(QUEUE, connection=REDIS_URL) as queue:
        job = await queue.add("welcome", {"to": "ada@example.com"})
        print("added job", job.id, "state", await queue.get_job_state(job.id))

        # `async with` starts the worker and closes it (gracefully) on exit.
        async with Worker(QUEUE, send_email, connection=REDIS_URL, concurrency=10):
            result = await job.wait_until_finished(timeout=30)
            print("result:", result)

        print("state now:", await job.get_state())
        await queue.obliterate(force=True)  # clean up the example's keys


if __name__ == "__main__":
    asyncio.run(main())
