"""Global events with QueueEvents: iterate them, register callbacks, resume by id.

Run:  REDIS_URL=redis://localhost:6379/0 python examples/events.py

QueueEvents reads the queue's events stream, so it sees what every producer
and worker does, in any process (BullMQ's too).
"""

import asyncio
import os

from pyqueue import AsyncQueue, Event, Job, QueueEvents, Worker

REDIS_URL = os.environ.get("REDIS_URL")  # None: pyqueue's default
QUEUE = "events-example"


async def process(job: Job) -> dict:
    await job.update_progress({"percent": 50})
    if job.data.get("fail"):
        raise ValueError("bad recipient")
    return {"ok": True}


async def main() -> None:
    async with AsyncQueue(QUEUE, connection=REDIS_URL) as queue:
        await queue.obliterate(force=True)  # start from an empty stream

        # 1. Iterate. "0" reads from the start of the retained stream; the default
        #    "$" means "events after the first read".
        async with QueueEvents(QUEUE, connection=REDIS_URL, last_event_id="0") as events:
            await queue.add("ok", {})
            await queue.add("broken", {"fail": True})
            async with Worker(QUEUE, process, connection=REDIS_URL):
                finished = 0
                resume_from = "0"
                async for event in events:
                    resume_from = event.id  # remember the last event handled
                    print(f"{event.id}  {event.name:<17} job={event.job_id}  {event.data}")
                    if event.name in ("completed", "failed"):
                        finished += 1
                    if finished == 2:
                        break
            # Not events.last_event_id: that is the last event *read*, and events are
            # read in batches of up to 100, so it may be past the ones handled.
        print("last event id:", resume_from)

        # 2. Resume later from that id: nothing is missed or repeated.
        await queue.add("after-restart", {})
        seen = asyncio.Event()

        def on_any(event: Event) -> None:
            print(f"resumed: {event.name:<9} job={event.job_id}")

        def on_waiting(event: Event) -> None:
            seen.set()

        async with QueueEvents(QUEUE, connection=REDIS_URL, last_event_id=resume_from) as ev:
            ev.on("*", on_any).on("waiting", on_waiting)
            await ev.start()  # dispatches to the callbacks in the background
            await asyncio.wait_for(seen.wait(), timeout=10)
        await queue.obliterate(force=True)  # clean up the example's keys


if __name__ == "__main__":
    asyncio.run(main())
