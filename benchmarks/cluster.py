"""Queues on a Redis Cluster: ``python -m benchmarks.cluster``.

Starts a local cluster of ``--masters`` primaries (no replicas: they would
only take CPU here), pre-loads N no-op jobs (200-byte payload) and runs
``--processes`` worker processes at ``--concurrency`` each, for:

- ``pyqueue unsharded``: one queue ``{bench}`` (one slot, so one primary does
  all the work);
- ``pyqueue sharded``: ``ShardedQueue("bench", shards=S)`` and one
  ``ShardedWorker`` per process (S defaults to the number of primaries);
- ``BullMQ unsharded``: BullMQ (Node, ioredis ``Cluster``) workers on a
  ``{bench}`` queue (BullMQ has no sharded queue).

Reported over the 10% -> 90% window of completions: jobs/s, Redis CPU per job
summed over the primaries, and each primary's CPU per job (``INFO cpu`` of
each). On a 2-core machine the primaries share the cores with the workers, so
jobs/s cannot grow with primaries; the per-primary CPU shows how the work
spreads: with S shards each primary carries about 1/k of it, so a machine with
k+ free cores for Redis should reach about k times one primary's ceiling
(Redis CPU per job x jobs/s = 1 core per primary). A smoke run:
``python -m benchmarks.cluster --jobs 2000 --processes 1 --reps 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import redis

from benchmarks.scaling import NODE_WORKER, PAYLOAD, node_available, redis_cpu, stop_workers
from pyqueue import AsyncQueue, Queue, Worker
from pyqueue.sharded import ShardedQueue, shard_names
from pyqueue.testing import LocalRedisCluster

SCENARIOS = ("pyqueue unsharded", "pyqueue unsharded (redis-py routing)", "pyqueue sharded",
             "BullMQ unsharded")


async def _noop(job: object) -> None:
    return None


async def _child(url: str, names: list[str], concurrency: int, pipelined: bool) -> None:
    """A worker process: one Worker per queue name on one cluster client, until SIGTERM."""
    import signal

    from pyqueue.connection import async_client

    client, _ = async_client(url)
    workers = [Worker(name, _noop, connection=client, concurrency=concurrency,
                      log_jobs=False, pipelined=pipelined) for name in names]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await asyncio.gather(*(w.start() for w in workers))
    await stop.wait()
    await asyncio.gather(*(w.close() for w in workers))
    await client.aclose()


def _primaries(cluster: LocalRedisCluster) -> list[redis.Redis]:
    out = []
    for port in cluster.ports:
        client = redis.Redis(port=port)
        if client.info("replication")["role"] == "master":
            out.append(client)
        else:
            client.close()
    return out


def _start(scenario: str, url: str, port: int, names: list[str], processes: int,
           concurrency: int) -> list[subprocess.Popen[bytes]]:
    if scenario.startswith("BullMQ"):
        node = shutil.which("node") or "node"
        spec = json.dumps({"clusterPort": port, "queue": names[0], "prefix": "bull",
                           "concurrency": concurrency})
        return [subprocess.Popen([node, str(NODE_WORKER), spec], stderr=subprocess.DEVNULL)
                for _ in range(processes)]
    spec = json.dumps({"url": url, "names": names, "concurrency": concurrency,
                       "pipelined": "redis-py" not in scenario})
    return [subprocess.Popen([sys.executable, "-m", "benchmarks.cluster", "--child", spec],
                             env={**os.environ, "PYTHONPATH": os.getcwd()},
                             stderr=subprocess.DEVNULL) for _ in range(processes)]


def measure(cluster: LocalRedisCluster, scenario: str, jobs: int, processes: int,
            concurrency: int, shards: int) -> tuple[float, list[float]]:
    """(jobs/s, Redis CPU ms per job of each primary) for one run."""
    base = f"b{uuid.uuid4().hex[:8]}"
    batches = [min(1000, jobs - i) for i in range(0, jobs, 1000)]
    if scenario == "pyqueue sharded":
        names = shard_names(base, shards)
        with ShardedQueue(base, shards=shards, connection=cluster.url) as sharded:
            for size in batches:
                sharded.add_bulk([{"name": "noop", "data": PAYLOAD}] * size)
    else:
        names = [f"{{{base}}}"]
        with Queue(names[0], connection=cluster.url) as queue:
            for size in batches:
                queue.add_bulk([{"name": "noop", "data": PAYLOAD}] * size)
    primaries = _primaries(cluster)
    counter = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    workers = _start(scenario, cluster.url, cluster.ports[0], names, processes, concurrency)
    try:
        low, high = jobs // 10, jobs - jobs // 10
        start: tuple[float, list[float], int] | None = None
        deadline = time.monotonic() + 600
        while True:
            done = sum(int(counter.zcard(f"bull:{n}:completed")) for n in names)
            if start is None and done >= low:
                start = (time.perf_counter(), [redis_cpu(p) for p in primaries], done)
            if start is not None and done >= high:
                t1, cpu1 = time.perf_counter(), [redis_cpu(p) for p in primaries]
                t0, cpu0, d0 = start
                count = max(done - d0, 1)
                return (count / max(t1 - t0, 1e-9),
                        [(b - a) / count * 1000 for a, b in zip(cpu0, cpu1, strict=True)])
            if time.monotonic() > deadline:
                raise TimeoutError(f"{scenario}: {done} of {jobs} jobs completed")
            time.sleep(0.01)
    finally:
        stop_workers(workers)
        for name in names:
            keys = counter.keys(f"bull:{name}:*")
            for key in keys:
                counter.delete(key)
        counter.close()
        for p in primaries:
            p.close()


async def measure_adds(url: str, jobs: int, pipelined: bool) -> tuple[float, float]:
    """(adds/s one at a time, adds/s with 100 in flight) to one cluster queue."""
    name = f"{{a{uuid.uuid4().hex[:8]}}}"
    queue = AsyncQueue(name, connection=url, pipelined=pipelined)
    try:
        await queue.add("warm", 1)
        t0 = time.perf_counter()
        for _ in range(jobs):
            await queue.add("noop", PAYLOAD)
        one = jobs / (time.perf_counter() - t0)

        async def producer(count: int) -> None:
            for _ in range(count):
                await queue.add("noop", PAYLOAD)

        t0 = time.perf_counter()
        await asyncio.gather(*(producer(jobs // 100) for _ in range(100)))
        many = (jobs // 100 * 100) / (time.perf_counter() - t0)
        await queue.obliterate(force=True)
    finally:
        await queue.close()
    return one, many


def main(argv: list[str] | None = None) -> int:
    """Print a Markdown table per scenario."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster")
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--shards", type=int, default=0, help="default: --masters")
    parser.add_argument("--jobs", type=int, default=30000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec: dict[str, Any] = json.loads(args.child)
        asyncio.run(_child(spec["url"], spec["names"], spec["concurrency"], spec["pipelined"]))
        return 0
    scenarios = [s for s in args.scenarios.split(",") if s in SCENARIOS]
    why = node_available()
    if why is not None and "BullMQ unsharded" in scenarios:
        print(f"BullMQ skipped: {why}", file=sys.stderr)
        scenarios.remove("BullMQ unsharded")
    shards = args.shards or args.masters
    with LocalRedisCluster(masters=args.masters, replicas=0) as cluster:
        print("Adds to one queue (AsyncQueue), adds/s, median of --reps:\n")
        print("| routing | one at a time | 100 in flight |")
        print("| --- | ---: | ---: |")
        for pipelined in (True, False):
            runs = [asyncio.run(measure_adds(cluster.url, min(args.jobs, 5000), pipelined))
                    for _ in range(args.reps)]
            label = "pyqueue's connection to the slot's primary" if pipelined \
                else "redis-py's cluster client"
            print(f"| {label} | {statistics.median(r[0] for r in runs):,.0f} | "
                  f"{statistics.median(r[1] for r in runs):,.0f} |", flush=True)
        print()
        print(f"{args.masters} primaries, {shards} shards, {args.processes} worker processes "
              f"x concurrency {args.concurrency}, {args.jobs} jobs, medians of {args.reps}, "
              f"{os.cpu_count()} cores\n")
        print("| scenario | jobs/s | Redis CPU ms/job (all primaries) "
              "| per primary ms/job, busiest first |")
        print("| --- | ---: | ---: | --- |")
        for scenario in scenarios:
            runs = [measure(cluster, scenario, args.jobs, args.processes, args.concurrency,
                            shards) for _ in range(args.reps)]
            rate = statistics.median(r[0] for r in runs)
            total = statistics.median(sum(r[1]) for r in runs)
            # Busiest primary first: a run's queue may sit on any primary.
            ranked = [sorted(r[1], reverse=True) for r in runs]
            per = [statistics.median(r[i] for r in ranked) for i in range(len(ranked[0]))]
            print(f"| {scenario} | {rate:,.0f} | {total:.3f} | "
                  f"{' / '.join(f'{c:.3f}' for c in per)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
