"""Fault injection on ``QueueEvents``: its connection is killed every ~0.5 s
while 500 jobs complete, and the reader still hands out every ``completed``
event exactly once (the stream is far below its cap here, so nothing is
trimmed: any loss would be the reader's)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis
from harness import Scenario

from pyqueue import Event, QueueEvents

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

JOBS = 500
KILL_EVERY = 0.5


def kill_events_readers(client: redis.Redis) -> int:
    """CLIENT KILL every connection reading an events stream (XREAD/XINFO)."""
    killed = 0
    for info in client.client_list():
        if info.get("cmd", "").startswith(("xread", "xinfo")):
            killed += client.client_kill_filter(_id=info["id"])
    return killed


class Killer(threading.Thread):
    """Runs ``fault()`` every ``every`` seconds until stopped."""

    def __init__(self, fault: Callable[[], int], every: float) -> None:
        super().__init__(daemon=True, name="events-killer")
        self.fault = fault
        self.every = every
        self.stop_event = threading.Event()
        self.killed = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            try:
                self.killed += self.fault()
            except Exception as exc:
                self.errors.append(repr(exc))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)


async def poll(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_events_reader_through_client_kill_every_half_second(
        scenario: Scenario) -> None:
    sc = scenario
    completed: list[Event] = []
    events = QueueEvents(sc.queue_name, connection=sc.url, block_ms=200, socket_timeout=2)
    events.on("completed", completed.append)
    await events.start()
    control = redis.Redis.from_url(sc.url)
    killer = Killer(lambda: kill_events_readers(control), KILL_EVERY)
    workers = [sc.start_worker(lock_duration=5.0, stalled_interval=2.0, concurrency=4,
                               duration=0.005) for _ in range(2)]
    try:
        await asyncio.to_thread(sc.wait_ready, workers)
        killer.start()
        producer = sc.produce_in_background(JOBS, per_batch=10, pause=0.1)
        await poll(lambda: not producer.is_alive(), 60, "the producer")
        await poll(sc.finished, 90, "all jobs to finish")
        # Events are read after the jobs finish: wait for the reader to catch up
        # (each kill delays it by at most the backoff).
        await poll(lambda: len({e.job_id for e in completed}) >= len(sc.added), 60,
                   "every completed event")
    finally:
        killer.stop()
        await events.close()
        control.close()
    assert len(sc.added) == JOBS, producer.errors
    counts = Counter(e.job_id for e in completed)
    assert set(counts) == set(sc.added)
    repeated = {job_id: n for job_id, n in counts.items() if n > 1}
    assert not repeated, f"completed events handed out more than once: {repeated}"
    ids = [e.id for e in completed]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    print(f"\nCHAOS events_client_kill: kills={killer.killed} jobs={JOBS} "
          f"completed_events={len(completed)}")
    assert killer.killed >= 6
    assert not killer.errors
