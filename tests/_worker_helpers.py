"""Helpers shared by the worker tests (not a test module).

- ``wait_for`` / ``wait_for_sync``: poll a condition with a deadline (the only
  kind of waiting the worker tests do besides awaiting events).
- ``pid_alive`` / ``check_child_reports``: for the process-mode tests.
- ``Probe``: counts processors running at once and records when each started.
- ``AppProcess``: a worker in a subprocess (``tests/_worker_app.py``) whose
  jobs block until the test releases them, for kill and signal tests.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

REPO = Path(__file__).resolve().parents[1]
APP = Path(__file__).with_name("_worker_app.py")


async def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "",
                   interval: float = 0.01) -> Any:
    """Poll ``condition`` (sync or async) until it returns a truthy value; return it.

    Fails the test after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(interval)


def wait_for_sync(condition: Callable[[], Any], timeout: float = 10.0, what: str = "",
                  interval: float = 0.01) -> Any:
    """``wait_for`` for code outside an event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a child process a test expects killed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def check_child_reports(queue: Any, worker: Any) -> Any:
    """Run one ``_proc_jobs.reports`` job on the process-mode ``worker`` and check
    that the child's progress and log line were stored; returns the job."""
    async with worker:
        job = await queue.add("j", {})
        child_pid = await job.wait_until_finished(timeout=20)
    assert child_pid != os.getpid()
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.progress == {"step": "done"}
    assert await stored.get_logs() == ["hello from the child"]
    return job


async def wait_event(event: asyncio.Event, timeout: float = 10.0, what: str = "") -> None:
    """Await an ``asyncio.Event``; fail the test after ``timeout`` seconds."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"timed out after {timeout}s waiting for {what or 'event'}")


def max_in_window(times: list[float], window: float) -> int:
    """The largest number of ``times`` inside any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        count = sum(1 for t in ordered[i:] if t < start + window)
        best = max(best, count)
    return best


class Probe:
    """Tracks processors: how many run at once (max), start times, order of ids."""

    def __init__(self) -> None:
        self.running = 0
        self.max_running = 0
        self.starts: list[float] = []
        self.order: list[str] = []
        self.done = 0

    def enter(self, job_id: str) -> None:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.starts.append(time.monotonic())
        self.order.append(job_id)

    def leave(self) -> None:
        self.running -= 1
        self.done += 1


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class AppProcess:
    """A ``Worker.run()`` in a subprocess on ``queue``; see ``tests/_worker_app.py``.

    Its processor writes ``app:<queue>:started:<id>`` when a job starts, then
    blocks until the test calls :meth:`release` (or ``data["block"]`` seconds
    pass). The worker's ``state`` is mirrored in ``app:<queue>:state``.
    """

    def __init__(self, queue: str, redis_url: str, log_dir: Path, **options: Any) -> None:
        self.queue = queue
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)
        args = [sys.executable, str(APP), queue, redis_url]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.log_path = log_dir / f"worker-{queue}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=subprocess_env(), cwd=str(REPO))

    def key(self, suffix: str) -> str:
        return f"app:{self.queue}:{suffix}"

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def state(self) -> str | None:
        return self.client.get(self.key("state"))

    def started(self, job_id: str) -> bool:
        return self.client.exists(self.key(f"started:{job_id}")) == 1

    def wait_started(self, job_id: str, timeout: float = 15.0) -> None:
        def check() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"worker process exited early ({self.proc.returncode}):\n"
                            f"{self.log()}")
            return self.started(job_id)
        wait_for_sync(check, timeout, f"job {job_id} to start in the worker process")

    def wait_state(self, state: str, timeout: float = 10.0) -> None:
        wait_for_sync(lambda: self.state() == state, timeout, f"worker state {state!r}")

    def release(self, job_id: str) -> None:
        self.client.rpush(self.key(f"release:{job_id}"), "go")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker process still running after {timeout}s:\n{self.log()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()
        self.client.close()


def damage_meta(client: Any, base: str) -> Callable[[], None]:
    """Replace the queue's ``<base>meta`` hash by a string: every call that
    reads ``meta`` (the clock sync, fetches, wake-ups) gets a WRONGTYPE error
    reply. Returns the repair (the saved hash put back)."""
    key = base + "meta"
    saved = client.hgetall(key)
    client.delete(key)
    client.set(key, "damaged")

    def repair() -> None:
        client.delete(key)
        if saved:
            client.hset(key, mapping=saved)

    return repair

