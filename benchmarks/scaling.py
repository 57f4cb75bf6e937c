"""How throughput scales with worker processes, pyqueue beside BullMQ (Node):
``python -m benchmarks.scaling``.

For each process count P (default 1, 2, 4, 8, 12) and each peer: pre-load N
no-op jobs (200-byte payload) into a fresh queue of one Redis this script
starts, run P worker processes at concurrency 100 (``pyqueue worker
--processes P`` or P ``node benchmarks/node/scale_worker.mjs``), and measure
over the 10% -> 90% window of completions: jobs/s and Redis's own CPU per job
(``INFO cpu``, user + sys). Medians of ``--reps`` runs.

On a machine with C cores, the worker processes and redis-server share them:
on 2 cores the jobs/s column shows oversubscription, not scaling, while Redis
CPU per job still shows what each extra process costs Redis. Run the full sweep
on a machine with more cores than ``max(P) + 1``; a smoke run:
``python -m benchmarks.scaling --jobs 2000 --processes 1,2 --reps 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from pyqueue import Queue
from pyqueue._server import RedisServer

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_WORKER = NODE_DIR / "scale_worker.mjs"
PAYLOAD = {"p": "x" * 192}  # 200 bytes of JSON
PEERS = ("bullmq", "pyqueue")


async def noop(job: object) -> None:
    """The benchmark's processor: does nothing."""
    return None


def redis_cpu(client: redis.Redis) -> float:
    """Redis's own CPU seconds so far (user + sys)."""
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def window(completed: Callable[[], int], cpu: Callable[[], float], total: int,
           timeout: float) -> tuple[float, float]:
    """Poll ``completed()`` until ``total``; returns ``(jobs/s, CPU s per job)``
    over the window from 10% to 90% of ``total`` completions."""
    low, high = total // 10, total - total // 10
    start: tuple[float, float, int] | None = None
    deadline = time.monotonic() + timeout
    while True:
        done = completed()
        if start is None and done >= low:
            start = (time.perf_counter(), cpu(), done)
        if start is not None and done >= high:
            t1, c1 = time.perf_counter(), cpu()
            t0, c0, d0 = start
            jobs = max(done - d0, 1)
            return jobs / max(t1 - t0, 1e-9), (c1 - c0) / jobs
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {total} jobs completed in {timeout} s")
        time.sleep(0.01)


def node_available() -> str | None:
    """Why BullMQ cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not (NODE_DIR / "node_modules" / "bullmq").exists():
        return "benchmarks/node/node_modules is missing (./scripts/setup.sh installs it)"
    return None


def preload(queue: Queue, jobs: int) -> None:
    """Add ``jobs`` no-op jobs (the 200-byte payload) in bulks of 1,000."""
    for start in range(0, jobs, 1000):
        queue.add_bulk([{"name": "noop", "data": PAYLOAD}] * min(1000, jobs - start))


def start_workers(peer: str, url: str, queue: str, processes: int,
                  concurrency: int) -> list[subprocess.Popen[bytes]]:
    """Start ``processes`` worker processes of ``peer`` on ``queue``."""
    if peer == "pyqueue":
        return [subprocess.Popen(
            [sys.executable, "-m", "pyqueue.cli", "worker", "benchmarks.scaling:noop",
             "--queue", queue, "--concurrency", str(concurrency), "--processes",
             str(processes), "--redis", url, "--log-level", "WARNING"],
            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": os.getcwd()})]
    node = shutil.which("node") or "node"
    spec = json.dumps({"url": url, "queue": queue, "concurrency": concurrency})
    return [subprocess.Popen([node, str(NODE_WORKER), spec], stderr=subprocess.DEVNULL)
            for _ in range(processes)]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every worker process and reap it."""
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def measure(url: str, peer: str, processes: int, jobs: int,
            concurrency: int = 100) -> tuple[float, float]:
    """(jobs/s, Redis CPU ms per job) of ``processes`` worker processes of ``peer``."""
    name = f"scale-{peer}-{processes}-{int(time.time() * 1000)}"
    with Queue(name, connection=url) as queue:
        preload(queue, jobs)
    client = redis.Redis.from_url(url)
    workers = start_workers(peer, url, name, processes, concurrency)
    try:
        rate, cpu = window(lambda: int(client.zcard(f"bull:{name}:completed")),
                           lambda: redis_cpu(client), jobs, timeout=600)
    finally:
        stop_workers(workers)
        client.delete(*client.keys(f"bull:{name}:*") or [f"bull:{name}:none"])
        client.close()
    return rate, cpu * 1000


def main(argv: list[str] | None = None) -> int:
    """Print a Markdown table of throughput and Redis CPU per job by process count."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling")
    parser.add_argument("--jobs", type=int, default=30000)
    parser.add_argument("--processes", default="1,2,4,8,12",
                        help="comma-separated process counts (default 1,2,4,8,12)")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--peers", default=",".join(PEERS))
    args = parser.parse_args(argv)
    counts = [int(p) for p in args.processes.split(",")]
    peers = [p for p in args.peers.split(",") if p in PEERS]
    why = node_available()
    if "bullmq" in peers and why is not None:
        print(f"BullMQ skipped: {why}", file=sys.stderr)
        peers.remove("bullmq")
    server = RedisServer()
    server.start()
    try:
        with redis.Redis.from_url(server.url) as client:
            version = client.info("server")["redis_version"]
        print(f"{args.jobs} jobs, concurrency {args.concurrency} per process, "
              f"medians of {args.reps} (10% -> 90% window), {os.cpu_count()} cores, "
              f"redis-server {version}\n")
        print("| processes | BullMQ jobs/s | pyqueue jobs/s | pyqueue / BullMQ "
              "| Redis CPU ms/job BullMQ / pyqueue |")
        print("| ---: | ---: | ---: | ---: | --- |")
        for processes in counts:
            row: dict[str, tuple[float, float]] = {}
            for peer in peers:
                runs = [measure(server.url, peer, processes, args.jobs, args.concurrency)
                        for _ in range(args.reps)]
                row[peer] = (statistics.median(r[0] for r in runs),
                             statistics.median(r[1] for r in runs))
            bull, py = row.get("bullmq"), row.get("pyqueue")
            ratio = f"{py[0] / bull[0]:.2f}x" if bull and py else "n/a"
            cpu = " / ".join(f"{row[p][1]:.3f}" if p in row else "n/a" for p in PEERS)
            print(f"| {processes} | {f'{bull[0]:,.0f}' if bull else 'n/a'} | "
                  f"{f'{py[0]:,.0f}' if py else 'n/a'} | {ratio} | {cpu} |", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
