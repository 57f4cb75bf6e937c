"""A pyqueue worker process for the fault-injection suite (not a test module).

``python tests/chaos/worker_app.py QUEUE REDIS_URL LEDGER_DIR [options]`` runs
``Worker.run()`` (SIGTERM/SIGINT shut it down gracefully) and writes every
processor start and end, and the worker's own events, to its ledger file in
LEDGER_DIR (see harness.py), never to the Redis under test.

The processor sleeps ``--duration`` seconds (or ``data["duration"]``);
``data["busy"]`` makes it hog the event loop with a CPU loop instead;
``data["fail_first"]`` fails the first attempt. ``--skew S`` shifts this
process's ``time.time()`` by S seconds (the ledger keeps the real clock).
Log lines go to stderr as ``<real time> <level> <message>``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REAL_TIME, Ledger

MAX_ERROR_RECORDS = 5000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("queue")
    parser.add_argument("redis_url")
    parser.add_argument("ledger_dir")
    parser.add_argument("--lock-duration", type=float, default=1.0)
    parser.add_argument("--stalled-interval", type=float, default=0.5)
    parser.add_argument("--max-stalled-count", type=int, default=100)
    parser.add_argument("--shutdown-grace", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--drain-delay", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=0.0)
    parser.add_argument("--skew", type=float, default=0.0)
    args = parser.parse_args()

    class Formatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return f"{REAL_TIME():.3f} {record.levelname} {record.getMessage()}"

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])

    if args.skew:
        skew = args.skew
        time.time = lambda: REAL_TIME() + skew  # type: ignore[assignment]

    import asyncio

    from pyqueue import Job, Worker

    ledger = Ledger(Path(args.ledger_dir), "worker")
    pid = os.getpid()
    errors = [0]

    async def process(job: Job) -> Any:
        data = job.data if isinstance(job.data, dict) else {}
        ledger.write("start", id=job.id, attempt=job.attempts_started, atm=job.attempts_made,
                     stc=job.stalled_counter, server_processed_on=job.fields.get("processedOn"))
        duration = float(data.get("duration", args.duration))
        if data.get("busy"):
            end = time.monotonic() + duration
            while time.monotonic() < end:  # hog the event loop and the GIL
                sum(range(1000))
        elif duration > 0:
            await asyncio.sleep(duration)
        else:
            await asyncio.sleep(0)
        if data.get("fail_first") and job.attempts_made == 0:
            ledger.write("end", id=job.id, outcome="error")
            raise ValueError("first attempt fails on purpose")
        ledger.write("end", id=job.id, outcome="ok")
        return {"pid": pid}

    class ChaosWorker(Worker):
        async def start(self) -> None:
            await super().start()
            ledger.write("ready", worker_id=self.id)

    worker = ChaosWorker(
        args.queue, process, connection=args.redis_url, concurrency=args.concurrency,
        lock_duration=args.lock_duration, stalled_interval=args.stalled_interval,
        max_stalled_count=args.max_stalled_count, shutdown_grace=args.shutdown_grace,
        drain_delay=args.drain_delay,
    )

    def on_error(exc: BaseException) -> None:
        errors[0] += 1
        if errors[0] <= MAX_ERROR_RECORDS:
            ledger.write("error", err=type(exc).__name__, msg=str(exc)[:200])

    worker.on("completed", lambda job, result: ledger.write("completed", id=job.id))
    worker.on("failed", lambda job, exc: ledger.write("failed", id=job.id,
                                                      reason=str(exc)[:200]))
    worker.on("lock_lost", lambda job, exc=None: ledger.write(
        "lock_lost", id=job if isinstance(job, str) else job.id))
    worker.on("stalled", lambda job_id: ledger.write("stalled", id=job_id))
    worker.on("error", on_error)
    worker.run()
    ledger.write("exit", errors=errors[0])
    ledger.close()
    print("worker exited cleanly", flush=True)


if __name__ == "__main__":
    main()
