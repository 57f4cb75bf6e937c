"""Celery with its Redis broker: ``task.delay`` and one worker process with the
``threads`` pool (``concurrency`` threads), results ignored.

Celery's default ``prefork`` pool runs jobs in child processes; the
``threads`` pool keeps "one worker process" literal. Celery has no bulk
enqueue API (a ``group`` sends one message per task). The worker runs in the
main thread (it installs signal handlers); the adapter's own control thread
measures and then ends the process with ``os._exit`` once it has printed the
result, since stopping an embedded Celery worker cleanly takes seconds.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import task_postrun

from benchmarks.common import (
    JOB_NAME,
    PAYLOAD,
    Args,
    Channel,
    Tracker,
    run_adapter,
    sync_latency_loop,
    timed_loop,
)

UNSUPPORTED = {"enqueue_bulk": "Celery has no bulk enqueue API"}

_hooks: dict[str, Any] = {"start": None, "done": None}


@task_postrun.connect
def _postrun(**kwargs: Any) -> None:
    hook = _hooks["done"]
    if hook is not None:
        hook()


def _app(args: Args) -> tuple[Celery, Any]:
    app = Celery("bench", broker=args.url, set_as_current=True)
    app.conf.update(
        task_ignore_result=True,
        task_default_queue=args.queue,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        worker_redirect_stdouts=False,
    )

    @app.task(name=JOB_NAME)
    def noop(data: Any) -> None:
        hook = _hooks["start"]
        if hook is not None:
            hook()

    return app, noop


def enqueue_single(args: Args, ch: Channel) -> dict[str, Any]:
    app, task = _app(args)
    task.delay(PAYLOAD)  # connect and declare the queue first
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete(args.queue)
    ch.checkpoint("start")
    out = timed_loop(args, lambda: task.delay(PAYLOAD))
    ch.checkpoint("end")
    return out


def _run_worker(app: Celery, concurrency: int, control: Any) -> None:
    """Run the worker in this (main) thread; ``control`` in another ends the process."""
    def guarded() -> None:
        try:
            control()
        finally:
            os._exit(0)

    threading.Thread(target=guarded, daemon=True).start()
    worker = app.Worker(pool_cls="threads", concurrency=concurrency, loglevel="WARNING",
                        quiet=True, without_mingle=True)
    worker.start()


def process(args: Args, ch: Channel) -> dict[str, Any]:
    app, task = _app(args)
    for _ in range(args.jobs):
        task.delay(PAYLOAD)
    tracker = Tracker(args.jobs)
    finished = threading.Event()
    tracker.on_target(finished.set)
    _hooks["start"] = tracker.started
    _hooks["done"] = tracker.done
    ch.checkpoint("start")
    launched = time.perf_counter()

    def control() -> None:
        finished.wait(args.deadline)
        out = tracker.outcome(launched)
        ch.checkpoint("end")
        ch.result(out)

    _run_worker(app, args.concurrency, control)
    raise SystemExit("celery worker stopped before the run ended")


def latency(args: Args, ch: Channel) -> dict[str, Any]:
    app, task = _app(args)
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

    def control() -> None:
        time.sleep(1.0)  # the worker connects and starts consuming
        ch.checkpoint("start")
        out = sync_latency_loop(args, lambda: task.delay(PAYLOAD), wait, arm)
        ch.checkpoint("end")
        ch.result(out)

    _hooks["start"] = on_start
    _run_worker(app, 1, control)
    raise SystemExit("celery worker stopped before the run ended")


if __name__ == "__main__":
    run_adapter(globals())
