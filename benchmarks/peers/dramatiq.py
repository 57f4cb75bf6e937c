"""Dramatiq with its Redis broker: ``actor.send`` and one ``dramatiq.Worker``
(``worker_threads`` = concurrency), default middleware.

Dramatiq has no bulk enqueue API (``group(...).run()`` sends one message at a
time). Completion is counted in an ``after_ack`` middleware hook.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import dramatiq
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

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

UNSUPPORTED = {"enqueue_bulk": "Dramatiq has no bulk enqueue API"}

_hooks: dict[str, Any] = {"start": None, "ack": None}


class _Acks(Middleware):
    def after_ack(self, broker: Any, message: Any) -> None:
        hook = _hooks["ack"]
        if hook is not None:
            hook()


def _setup(args: Args) -> tuple[RedisBroker, Any]:
    broker = RedisBroker(url=args.url)
    broker.add_middleware(_Acks())
    dramatiq.set_broker(broker)

    def noop(data: Any) -> None:
        hook = _hooks["start"]
        if hook is not None:
            hook()

    actor = dramatiq.actor(noop, actor_name=JOB_NAME, queue_name=args.queue, broker=broker)
    return broker, actor


def enqueue_single(args: Args, ch: Channel) -> dict[str, Any]:
    broker, actor = _setup(args)
    broker.client.ping()
    ch.checkpoint("start")
    out = timed_loop(args, lambda: actor.send(PAYLOAD))
    ch.checkpoint("end")
    return out


def process(args: Args, ch: Channel) -> dict[str, Any]:
    broker, actor = _setup(args)
    for _ in range(args.jobs):
        actor.send(PAYLOAD)
    tracker = Tracker(args.jobs)
    finished = threading.Event()
    tracker.on_target(finished.set)
    _hooks["start"] = tracker.started
    _hooks["ack"] = tracker.done
    ch.checkpoint("start")
    launched = time.perf_counter()
    worker = Worker(broker, worker_threads=args.concurrency)
    worker.start()
    finished.wait(args.deadline)
    out = tracker.outcome(launched)
    ch.checkpoint("end")
    _hooks["start"] = _hooks["ack"] = None
    worker.stop(timeout=5000)
    return out


def latency(args: Args, ch: Channel) -> dict[str, Any]:
    broker, actor = _setup(args)
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

    _hooks["start"] = on_start
    worker = Worker(broker, worker_threads=1)
    worker.start()
    time.sleep(0.3)
    ch.checkpoint("start")
    out = sync_latency_loop(args, lambda: actor.send(PAYLOAD), wait, arm)
    ch.checkpoint("end")
    _hooks["start"] = None
    worker.stop(timeout=5000)
    return out


if __name__ == "__main__":
    run_adapter(globals())
