"""Retries, backoff and the special errors a processor can raise.

Run:  REDIS_URL=redis://localhost:6379/0 python examples/retries_and_backoff.py

Jobs, by name:
  flaky      fails twice, then succeeds (attempts=3, exponential backoff)
  linear     always fails; retried by a registered custom strategy, then failed
  custom     uses BullMQ's "custom" type, computed by the worker's backoff_strategy=
  bad-input  raises UnrecoverableError: failed at once, attempts left unused
  slow       runs past its timeout: JobTimeoutError, retried, then failed
  later      moves itself to delayed (DelayedError), then completes
  limited    rate-limits the whole queue (RateLimitError), then completes
"""

import asyncio
import contextlib
import os
from collections import Counter

from pyqueue import (
    AsyncJob,
    AsyncQueue,
    DelayedError,
    Job,
    JobFailedError,
    RateLimitError,
    UnrecoverableError,
    Worker,
    register_backoff_strategy,
)

REDIS_URL = os.environ.get("REDIS_URL")  # None: pyqueue's default
QUEUE = "retries-and-backoff"
runs: Counter[str] = Counter()  # how often each job's processor ran


def linear(attempts_made: int, error: BaseException, job: Job) -> float:
    """A custom strategy: wait 0.1 s, 0.2 s, 0.3 s, ... (seconds; None = do not retry)."""
    return 0.1 * attempts_made


# Register in the producer (so add() accepts the name) and in the worker (which calls it).
register_backoff_strategy("linear", linear)


class Mailer(Worker):
    """A Worker subclass: override process() instead of passing a processor."""

    async def process(self, job: AsyncJob) -> str:
        runs[job.name] += 1
        n = runs[job.name]
        if job.name == "flaky" and n < 3:
            raise ConnectionError(f"SMTP server busy (run {n})")
        if job.name in ("linear", "custom"):
            raise ConnectionError(f"still down (run {n})")
        if job.name == "bad-input":
            raise UnrecoverableError("no such mailbox")
        if job.name == "slow":
            await asyncio.sleep(5)  # cancelled after the job's timeout
        if job.name == "later" and n == 1:
            await job.move_to_delayed(0.3)  # seconds from now, or an aware datetime
            raise DelayedError()
        if job.name == "limited" and n == 1:
            await self.rate_limit(0.3)  # no worker of the queue takes jobs for 0.3 s
            raise RateLimitError()
        return f"{job.name} done after {n} run(s)"


def on_failed(job: Job, exc: BaseException) -> None:
    # Called on every failed attempt, the last one included.
    print(f"  attempt {job.attempts_made}/{job.attempts} of {job.name} failed: "
          f"{type(exc).__name__}: {exc}")


async def main() -> None:
    async with AsyncQueue(QUEUE, connection=REDIS_URL) as queue:
        jobs = [
            await queue.add("flaky", {}, attempts=3,
                            backoff={"type": "exponential", "delay": 0.2}),  # 0.2 s, 0.4 s
            await queue.add("linear", {}, attempts=3, backoff={"type": "linear"}),
            await queue.add("custom", {}, attempts=2, backoff={"type": "custom"}),
            await queue.add("bad-input", {}, attempts=5, backoff=1),
            await queue.add("slow", {}, attempts=2, timeout=0.2),
            await queue.add("later", {}),
            await queue.add("limited", {}),
        ]
        worker = Mailer(QUEUE, connection=REDIS_URL, concurrency=4,
                        backoff_strategy=lambda attempts_made, exc, job: 0.05)
        worker.on("failed", on_failed)
        async with worker:
            for job in jobs:
                with contextlib.suppress(JobFailedError):  # failing is expected here
                    await job.wait_until_finished(timeout=30)
        print("results:")
        for job in jobs:
            fresh = await queue.get_job(job.id)
            assert fresh is not None
            state = await fresh.get_state()
            outcome = fresh.return_value if state == "completed" else fresh.failed_reason
            print(f"  {fresh.name:<9} {state:<9} attempts_made={fresh.attempts_made} "
                  f"runs={runs[fresh.name]}  {outcome}")
        await queue.obliterate(force=True)  # clean up the example's keys


if __name__ == "__main__":
    asyncio.run(main())
