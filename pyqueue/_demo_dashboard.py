"""``pyqueue demo --dashboard``: the dashboard on a printed URL and a queue with jobs moving
through it (added, prioritized, delayed, retried, failed, completed) until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from typing import Any, TextIO

from .errors import UnrecoverableError
from .job import AsyncJob
from .queue import AsyncQueue
from .worker import Worker

#: Seconds between two added jobs, and between two narrated count lines.
ADD_EVERY = 0.4
SAY_EVERY = 5.0


def start_dashboard(url: str, host: str, port: int) -> tuple[Any, threading.Thread]:
    """uvicorn serving ``create_app(url)`` in a thread (signals stay with the demo)."""
    import uvicorn

    from .web import create_app

    config = uvicorn.Config(create_app(url), host=host, port=port, log_level="warning",
                            access_log=False, ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="pyqueue-dashboard", daemon=True)
    thread.start()
    return server, thread


async def _wait_started(server: Any, thread: threading.Thread, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _process(job: AsyncJob) -> Any:
    for step in (25, 50, 75):
        await asyncio.sleep(random.uniform(0.1, 0.4))
        await job.update_progress(step)
    if job.name == "flaky-webhook" and job.attempts_made < 2:
        raise ConnectionError("webhook timed out")
    if job.name == "bad-address":
        raise UnrecoverableError(f"{job.data['to']!r} is not an email address")
    await job.log(f"sent to {job.data.get('to')}")
    return {"sent_to": job.data.get("to")}


async def _feed(queue: AsyncQueue, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        pick = n % 10
        to = f"user{n}@example.com"
        if pick == 3:
            await queue.add("password-reset", {"to": to}, priority=1)
        elif pick == 5:
            await queue.add("reminder", {"to": to}, delay=8)
        elif pick == 7:
            await queue.add("flaky-webhook", {"to": to}, attempts=3,
                            backoff={"type": "exponential", "delay": 1})
        elif pick == 9:
            await queue.add("bad-address", {"to": f"not-an-address-{n}"})
        else:
            await queue.add("welcome-email", {"to": to}, remove_on_complete=500)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), ADD_EVERY)


async def run_dashboard_demo(url: str, out: TextIO, *, host: str = "127.0.0.1",
                             port: int = 8080, stop: asyncio.Event | None = None) -> int:
    """Serve the dashboard and keep jobs moving until ``stop`` is set (or Ctrl-C)."""
    stop = stop or asyncio.Event()
    name = f"demo-live-{uuid.uuid4().hex[:4]}"
    server, thread = start_dashboard(url, host, port)
    if not await _wait_started(server, thread):
        out.write(f"the dashboard could not listen on {host}:{port} (taken? try --port)\n")
        server.should_exit = True
        return 1
    shown = f"[{host}]" if ":" in host else host
    out.write(f"dashboard: http://{shown}:{port}/  (open it: queue {name!r} has jobs "
              f"moving; Ctrl-C stops the demo and removes the queue)\n")
    out.flush()
    async with AsyncQueue(name, connection=url) as queue:
        worker = Worker(name, _process, connection=url, concurrency=3, autorun=False)
        feeder = None
        try:
            await worker.start()
            feeder = asyncio.create_task(_feed(queue, stop))
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), SAY_EVERY)
                except asyncio.TimeoutError:
                    counts = await queue.get_job_counts("waiting", "active", "delayed",
                                                        "completed", "failed")
                    out.write(f"{name}: {counts}\n")
                    out.flush()
        finally:
            stop.set()
            if feeder is not None:
                await asyncio.gather(feeder, return_exceptions=True)
            await worker.close(force=True)
            await queue.obliterate(force=True)
            server.should_exit = True
            await asyncio.to_thread(thread.join, 10)
    out.write(f"queue {name!r} removed; dashboard stopped\n")
    return 0
