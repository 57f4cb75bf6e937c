"""Micro-benchmark: Python CPU per awaited ``AsyncQueue.add`` (and per sync ``Queue.add``).

Adds ``N`` jobs one after the other, each awaited, against a redis-server on
this machine, and reports the Python process's CPU time per add (user +
system, from ``time.process_time``: Redis's own work is in another process
and not counted), plus wall time. Run it from the checkout to measure::

    python -m benchmarks.micro_add [--jobs 20000] [--url redis://127.0.0.1:6379/15]

Without ``--url`` it starts a throwaway ``redis-server`` (no persistence) on
a free port. To compare two versions of pyqueue, run it with
``PYTHONPATH=<other checkout>`` first on the path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import redis

import pyqueue
from pyqueue import AsyncQueue, Queue

PAYLOAD = {"p": "x" * 192}


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no redis-server on PATH; pass --url")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no",
                                 "--dir", tmp], stdout=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


async def _async_adds(url: str, jobs: int) -> tuple[float, float]:
    async with AsyncQueue("micro-add-async", connection=url) as queue:
        await queue.obliterate(force=True)
        for _ in range(200):  # warm up: connection, clock, script cache
            await queue.add("noop", PAYLOAD)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(jobs):
            await queue.add("noop", PAYLOAD)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await queue.obliterate(force=True)
    return cpu, wall


def _sync_adds(url: str, jobs: int) -> tuple[float, float]:
    with Queue("micro-add-sync", connection=url) as queue:
        queue.obliterate(force=True)
        for _ in range(200):
            queue.add("noop", PAYLOAD)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(jobs):
            queue.add("noop", PAYLOAD)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        queue.obliterate(force=True)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs")
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    print(f"pyqueue from {pyqueue.__file__}")
    with _server(args.url) as url:
        for label, run in (("AsyncQueue.add", lambda: asyncio.run(_async_adds(url, args.jobs))),
                           ("Queue.add", lambda: _sync_adds(url, args.jobs))):
            best = min((run() for _ in range(args.rounds)), key=lambda r: r[0])
            cpu, wall = best
            print(f"{label:15} {args.jobs} adds: {cpu / args.jobs * 1e6:6.1f} us CPU/add, "
                  f"{wall / args.jobs * 1e6:6.1f} us wall/add (best of {args.rounds})")


if __name__ == "__main__":
    main()
