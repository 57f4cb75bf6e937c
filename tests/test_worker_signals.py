"""Graceful shutdown of ``Worker.run()`` in a real subprocess (tests/_worker_app.py).

The subprocess's jobs block until the test releases them, and it mirrors the
worker's ``state`` into Redis, so each step waits on an observable condition.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _worker_helpers import AppProcess

from pyqueue import Job, Queue, Worker


@pytest.fixture
def queue(redis_url: str, queue_name: str) -> Iterator[Queue]:
    q = Queue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        q.close()


@pytest.fixture
def spawn(redis_url: str, queue_name: str, tmp_path: Path) -> Iterator[Any]:
    apps: list[AppProcess] = []

    def start(**options: Any) -> AppProcess:
        app = AppProcess(queue_name, redis_url, tmp_path, **options)
        apps.append(app)
        return app

    try:
        yield start
    finally:
        for app in apps:
            app.close()


def test_sigterm_lets_the_running_job_finish_and_exits_0(queue: Queue, spawn: Any) -> None:
    app = spawn()
    job = queue.add("long", {})
    app.wait_started(job.id)
    app.signal(signal.SIGTERM)
    app.wait_state("closing")
    late = queue.add("late", {})  # added after the signal: must not be taken
    assert queue.get_job_state(job.id) == "active"
    assert app.proc.poll() is None
    app.release(job.id)
    rc = app.wait_exit(15)
    assert rc == 0, app.log()
    assert "worker exited cleanly" in app.log()
    assert queue.get_job_state(job.id) == "completed"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.return_value["released"] is True
    assert queue.get_job_state(late.id) == "waiting"


async def test_job_longer_than_shutdown_grace_is_handed_back(
    redis_url: str, queue_name: str, queue: Queue, spawn: Any
) -> None:
    app = spawn(shutdown_grace=0.5)
    job = queue.add("long", {}, attempts=1)
    app.wait_started(job.id)
    t0 = time.monotonic()
    app.signal(signal.SIGTERM)
    rc = app.wait_exit(15)
    elapsed = time.monotonic() - t0
    assert rc == 0, app.log()
    assert 0.5 - 0.05 <= elapsed < 5, elapsed
    assert queue.get_job_state(job.id) == "waiting"
    stored = queue.get_job(job.id)
    assert stored is not None
    assert stored.attempts_made == 0
    assert stored.failed_reason is None

    async def finish(j: Job) -> Any:
        return "finished by another worker"

    async with Worker(queue_name, finish, connection=redis_url, shutdown_grace=2):
        done = queue.get_job(job.id)
        assert done is not None
        # a sync Job: wait from a thread so the worker's loop keeps running
        result = await asyncio.to_thread(done.wait_until_finished, 10)
    assert result == "finished by another worker"
    assert queue.get_job_state(job.id) == "completed"


def test_second_signal_forces_shutdown(queue: Queue, spawn: Any) -> None:
    app = spawn(shutdown_grace=30)
    job = queue.add("long", {}, attempts=1)
    app.wait_started(job.id)
    app.signal(signal.SIGTERM)
    app.wait_state("closing")
    app.signal(signal.SIGTERM)
    rc = app.wait_exit(4)  # far less than shutdown_grace
    assert rc == 0, app.log()
    assert queue.get_job_state(job.id) == "waiting"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 0 and stored.failed_reason is None


def test_run_exits_on_sigint(queue: Queue, spawn: Any) -> None:
    app = spawn()
    job = queue.add("quick", {})
    app.release(job.id)  # the job returns as soon as it starts
    assert job.wait_until_finished(timeout=15)["released"] is True
    app.signal(signal.SIGINT)
    rc = app.wait_exit(15)
    assert rc == 0, app.log()
    assert "worker exited cleanly" in app.log()
    assert "Traceback" not in app.log()
