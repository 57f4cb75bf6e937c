"""``pyqueue demo``: add a handful of jobs and process them, narrating each step.

Shows priorities, a delayed job, a retry with exponential backoff, an
unrecoverable failure, progress and the final counts. With no Redis URL in
the environment it runs on the embedded Redis server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, TextIO

from .errors import UnrecoverableError
from .job import AsyncJob, Job
from .queue import AsyncQueue
from .worker import Worker


async def run_demo(url: str, out: TextIO, *, queue_name: str | None = None,
                   start: float | None = None) -> dict[str, int]:
    """Run the demo against ``url``; returns the final job counts.

    ``start`` is the ``time.monotonic()`` the narration's clock counts from
    (default: now), so several parts of one demo share one clock.
    """
    name = queue_name or f"demo-{uuid.uuid4().hex[:6]}"
    start = time.monotonic() if start is None else start

    def say(text: str) -> None:
        out.write(f"[{time.monotonic() - start:6.2f}s] {text}\n")
        out.flush()

    async with AsyncQueue(name, connection=url) as queue:
        say(f"queue {name!r} on {_masked(url)}")
        await queue.add("welcome-email", {"to": "ada@example.com"})
        await queue.add("password-reset", {"to": "alan@example.com"}, priority=1)
        await queue.add("newsletter", {"to": "grace@example.com"}, priority=5)
        await queue.add("reminder", {"to": "edsger@example.com"}, delay=1.0)
        await queue.add("flaky-webhook", {"url": "https://example.invalid/hook"},
                        attempts=3, backoff={"type": "exponential", "delay": 0.2})
        await queue.add("bad-address", {"to": "not-an-address"}, attempts=5)
        await queue.add("welcome-email", {"to": "ada@example.com"}, job_id="welcome-ada")
        again = await queue.add("welcome-email", {"to": "ada@example.com"},
                                job_id="welcome-ada")
        say(f"added 7 jobs; re-adding job_id='welcome-ada' returned the same job "
            f"(id {again.id}), nothing new")
        counts = await queue.get_job_counts("waiting", "prioritized", "delayed")
        say(f"counts before the worker starts: {counts}")

        tries: dict[str, int] = {}

        async def process(job: AsyncJob) -> Any:
            await job.update_progress(50)
            if job.name == "flaky-webhook":
                tries[job.id] = tries.get(job.id, 0) + 1
                if tries[job.id] < 3:
                    raise ConnectionError(f"webhook timed out (try {tries[job.id]})")
            if job.name == "bad-address":
                raise UnrecoverableError(f"{job.data['to']!r} is not an email address")
            await asyncio.sleep(0.05)
            return {"sent_to": job.data.get("to") or job.data.get("url")}

        finished = asyncio.Event()
        total = 7

        def check_done() -> None:
            if done["completed"] + done["failed"] >= total:
                finished.set()

        done = {"completed": 0, "failed": 0}

        def on_active(job: Job) -> None:
            say(f"active     {job.name:<15} id={job.id} priority={job.priority} "
                f"attempt={job.attempts_made + 1}/{job.attempts}")

        def on_completed(job: Job, result: Any) -> None:
            done["completed"] += 1
            say(f"completed  {job.name:<15} id={job.id} -> {result}")
            check_done()

        def on_failed(job: Job, exc: BaseException) -> None:
            final = isinstance(exc, UnrecoverableError) or job.attempts_made >= job.attempts
            if final:
                done["failed"] += 1
            what = "failed    " if final else "will retry"
            say(f"{what} {job.name:<15} id={job.id}: {exc}")
            check_done()

        worker = Worker(name, process, connection=url, concurrency=2, autorun=False)
        worker.on("active", on_active).on("completed", on_completed).on("failed", on_failed)
        try:
            await worker.start()
            try:
                await asyncio.wait_for(finished.wait(), timeout=30)
            finally:
                await worker.close()
            counts = await queue.get_job_counts("completed", "failed", "waiting", "delayed")
            say(f"final counts: {counts}")
        finally:  # also when interrupted (Ctrl-C cancels this task)
            await queue.obliterate(force=True)
        say("queue removed; done")
        return counts


def _masked(url: str) -> str:
    from .connection import mask_url

    return mask_url(url)
