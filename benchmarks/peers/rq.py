"""RQ: ``Queue.enqueue`` / ``enqueue_many`` and a ``SimpleWorker`` in burst mode.

RQ's default ``Worker`` forks a new process for every job, which measures
``fork()`` more than the queue; ``SimpleWorker`` runs the job in the worker
process itself, the fair comparison with the others' in-process workers. RQ
runs one job at a time per worker process: it has no in-process concurrency,
so only ``concurrency=1`` is measured.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker

from benchmarks.common import (
    PAYLOAD,
    Args,
    Channel,
    Tracker,
    batches,
    run_adapter,
    sync_latency_loop,
    timed_loop,
)
from benchmarks.peers import _jobs
from benchmarks.peers._jobs import noop

UNSUPPORTED = {"process": "RQ runs one job at a time per worker process"}

def _queue(args: Args) -> Queue:
    return Queue(args.queue, connection=Redis.from_url(args.url))


def enqueue_single(args: Args, ch: Channel) -> dict[str, Any]:
    queue = _queue(args)
    queue.count  # noqa: B018 - connect first
    ch.checkpoint("start")
    out = timed_loop(args, lambda: queue.enqueue(noop, PAYLOAD))
    ch.checkpoint("end")
    return out


def _enqueue_many(queue: Queue, n: int) -> None:
    queue.enqueue_many([Queue.prepare_data(noop, (PAYLOAD,)) for _ in range(n)])


def enqueue_bulk(args: Args, ch: Channel) -> dict[str, Any]:
    queue = _queue(args)
    queue.count  # noqa: B018
    ch.checkpoint("start")
    t0 = time.perf_counter()
    done = 0
    for size in batches(args.jobs, args.batch):
        _enqueue_many(queue, size)
        done += size
        if time.perf_counter() - t0 > args.deadline:
            break
    seconds = time.perf_counter() - t0
    ch.checkpoint("end")
    return {"jobs": done, "seconds": seconds}


class _Worker(SimpleWorker):
    on_done: Any = None

    def execute_job(self, job: Any, queue: Any) -> None:
        super().execute_job(job, queue)
        if self.on_done is not None:
            self.on_done(self)


def process(args: Args, ch: Channel) -> dict[str, Any]:
    if args.concurrency != 1:
        return {"unsupported": UNSUPPORTED["process"]}
    queue = _queue(args)
    for size in batches(args.jobs, args.batch):
        _enqueue_many(queue, size)
    tracker = Tracker(args.jobs)
    _jobs.on_start = tracker.started
    stop_at = time.perf_counter() + args.deadline

    def on_done(worker: _Worker) -> None:
        tracker.done()
        if time.perf_counter() > stop_at:
            worker._stop_requested = True

    worker = _Worker([queue], connection=queue.connection)
    worker.on_done = on_done
    ch.checkpoint("start")
    launched = time.perf_counter()
    worker.work(burst=True, max_jobs=args.jobs, logging_level="WARNING")
    out = tracker.outcome(launched)
    ch.checkpoint("end")
    return out


def latency(args: Args, ch: Channel) -> dict[str, Any]:
    # RQ installs signal handlers, so its worker must run in the main thread;
    # the producer runs in a second thread.
    queue = _queue(args)
    started = threading.Event()
    stamp: list[float] = []

    def on_start() -> None:
        stamp.append(time.perf_counter())
        started.set()

    def arm() -> None:
        stamp.clear()
        started.clear()

    def wait(timeout: float) -> float | None:
        return stamp[0] if started.wait(timeout) else None

    worker = _Worker([queue], connection=queue.connection)
    result: dict[str, Any] = {}

    def produce() -> None:
        try:
            time.sleep(0.3)  # the worker reaches its blocking pop
            ch.checkpoint("start")
            result.update(sync_latency_loop(args, lambda: queue.enqueue(noop, PAYLOAD),
                                            wait, arm))
            ch.checkpoint("end")
        finally:
            _jobs.on_start = None
            worker._stop_requested = True
            queue.enqueue(noop, PAYLOAD)  # wakes the worker so it sees the stop

    _jobs.on_start = on_start
    producer = threading.Thread(target=produce)
    producer.start()
    worker.work(burst=False, logging_level="WARNING")
    producer.join()
    return result


if __name__ == "__main__":
    run_adapter(globals())
