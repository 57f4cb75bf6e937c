"""How throughput scales with worker processes: ``python -m benchmarks.scaling``.

Pre-loads N no-op jobs (200-byte payload), runs ``pyqueue worker --processes P
--concurrency 100`` for P = 1, 2, 3 against one Redis this script starts, and
reports jobs/s and Redis CPU per job. On a machine with C cores, processes
and redis-server share those cores: throughput grows until Redis (one core)
or the cores run out.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import redis

from pyqueue import Queue
from pyqueue._server import RedisServer


async def noop(job: object) -> None:
    """The benchmark's processor: does nothing."""
    return None


def _cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def measure(url: str, processes: int, jobs: int) -> tuple[float, float]:
    """(jobs/s, Redis CPU ms per job) for ``processes`` worker processes."""
    name = f"scale{processes}{int(time.time() * 1000)}"
    with Queue(name, connection=url) as queue:
        for start in range(0, jobs, 1000):
            queue.add_bulk([{"name": "j", "data": {"p": "x" * 180}}] * min(1000, jobs - start))
    client = redis.Redis.from_url(url)
    cpu0, t0 = _cpu(client), time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "-m", "pyqueue.cli", "worker", "benchmarks.scaling:noop",
         "--queue", name, "--concurrency", "100", "--processes", str(processes),
         "--redis", url, "--log-level", "WARNING"],
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        while int(client.zcard(f"bull:{name}:completed")) < jobs:
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        cpu = _cpu(client) - cpu0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        client.close()
    return jobs / elapsed, cpu / jobs * 1000


def main(argv: list[str] | None = None) -> int:
    """Print a Markdown table of throughput by process count."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling")
    parser.add_argument("--jobs", type=int, default=30000)
    parser.add_argument("--max-processes", type=int, default=3)
    args = parser.parse_args(argv)
    server = RedisServer()
    server.start()
    try:
        print("| worker processes | jobs/s | Redis CPU ms/job |")
        print("| ---: | ---: | ---: |")
        for processes in range(1, args.max_processes + 1):
            rate, cpu = measure(server.url, processes, args.jobs)
            print(f"| {processes} | {rate:,.0f} | {cpu:.3f} |", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
