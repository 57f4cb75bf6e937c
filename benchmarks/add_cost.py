"""Redis's own CPU per add: pyqueue's ``AsyncQueue.add`` against BullMQ's ``Queue.add``.

Starts a throwaway ``redis-server``, then for each side (pyqueue, BullMQ 6.7
in Node when ``benchmarks/node`` is set up) and each way of adding
(``seq``: each add awaited before the next; ``c50``: 50 adds in flight)
adds ``--jobs`` jobs (200-byte payload, no options) to an emptied database
after a 200-add warm-up, and reads Redis's ``INFO commandstats`` and ``INFO
cpu`` around the measured adds only. Reports per add, the median of
``--rounds`` runs:

* ``script us``: the usec of the script calls (FCALL / EVALSHA / EVAL) from
  ``commandstats``, i.e. everything Redis did in the add scripts (the
  commands a script calls are counted inside it, and again on their own
  lines, so they are not added a second time);
* ``other us``: the usec of every other command the client sent (none in a
  steady run: both sides send only script calls);
* ``cpu us``: ``used_cpu_user + used_cpu_sys`` of the server (also the
  network reads and writes, and whatever the idle server does meanwhile);
* ``calls``: script calls per add (below 1 when adds are batched);

and the ratio pyqueue / BullMQ of each. Run it from the checkout::

    python -m benchmarks.add_cost [--jobs 20000] [--rounds 3] [--only pyqueue]

(the machine's other load shows in ``cpu us`` more than in ``script us``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

import pyqueue
from pyqueue import AsyncQueue
from pyqueue.testing import RedisServer

PAYLOAD = {"p": "x" * 192}
NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT_COMMANDS = ("fcall", "fcall_ro", "evalsha", "eval", "evalsha_ro", "eval_ro")
#: Commands the measurement itself sends, or the commands scripts call (those
#: are inside the script's usec already).
NESTED = {"incr", "exists", "hset", "hmset", "hget", "hmget", "hexists", "xadd", "lpush",
          "rpush", "zadd", "llen", "get", "set", "type", "zscore", "zrevrangebyscore",
          "zrange", "pttl", "del", "lpos", "persist", "zcard", "hsetnx"}
MEASURING = {"info", "config", "ping", "flushall", "client"}
WAYS = {"seq": 1, "c50": 50}


def _snapshot(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def _pyqueue_adds(url: str, jobs: int, inflight: int, ready: Callable[[], None]) -> float:
    async with AsyncQueue("add-cost", connection=url) as queue:
        for _ in range(200):  # warm up: connection, clock, library
            await queue.add("noop", PAYLOAD)
        ready()
        started = time.perf_counter()
        left = jobs

        async def lane() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await queue.add("noop", PAYLOAD)

        await asyncio.gather(*(lane() for _ in range(inflight)))
        return time.perf_counter() - started


def _pyqueue(client: redis.Redis, url: str, jobs: int, inflight: int) -> dict[str, float]:
    box: dict[str, float] = {}

    def ready() -> None:
        client.config_resetstat()
        box["cpu0"] = _snapshot(client)

    seconds = asyncio.run(_pyqueue_adds(url, jobs, inflight, ready))
    return _finish(client, box["cpu0"], seconds, jobs)


def _bullmq_adds(url: str, jobs: int, inflight: int, ready: Callable[[], None]) -> float:
    """BullMQ's side (``node/add_cost.mjs``): its warm-up, then ``ready()``,
    then the measured adds; returns their seconds as Node timed them."""
    args = json.dumps({"url": url, "jobs": jobs, "inflight": inflight})
    proc = subprocess.Popen(["node", "add_cost.mjs", args], cwd=NODE_DIR, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("add_cost.mjs did not start")
        ready()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        return float(json.loads(proc.stdout.readline())["seconds"])
    finally:
        proc.stdin.close()
        proc.wait(60)


def _bullmq(client: redis.Redis, url: str, jobs: int, inflight: int) -> dict[str, float]:
    box: dict[str, float] = {}

    def ready() -> None:
        client.config_resetstat()
        box["cpu0"] = _snapshot(client)

    seconds = _bullmq_adds(url, jobs, inflight, ready)
    return _finish(client, box["cpu0"], seconds, jobs)


def _finish(client: redis.Redis, cpu0: float, seconds: float, jobs: int) -> dict[str, float]:
    cpu1 = _snapshot(client)
    stats: dict[str, Any] = client.info("commandstats")
    script_us = other_us = calls = 0.0
    for key, stat in stats.items():
        command = key.removeprefix("cmdstat_").lower()
        if command in SCRIPT_COMMANDS:
            script_us += stat["usec"]
            calls += stat["calls"]
        elif command not in NESTED and command not in MEASURING:
            other_us += stat["usec"]
    return {"script_us": script_us / jobs, "other_us": other_us / jobs,
            "cpu_us": (cpu1 - cpu0) * 1e6 / jobs, "calls": calls / jobs,
            "wall_us": seconds * 1e6 / jobs}


SIDES = {"pyqueue": _pyqueue, "bullmq": _bullmq}
FIELDS = ("script_us", "other_us", "cpu_us", "calls", "wall_us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=sorted(SIDES), default=None)
    parser.add_argument("--ways", default="seq,c50")
    args = parser.parse_args()
    sides = [args.only] if args.only else list(SIDES)
    if "bullmq" in sides and (shutil.which("node") is None
                              or not (NODE_DIR / "node_modules" / "bullmq").is_dir()):
        print("BullMQ side skipped: no node or no benchmarks/node/node_modules "
              "(run ./scripts/setup.sh)")
        sides.remove("bullmq")
    print(f"pyqueue from {pyqueue.__file__}; {args.jobs} adds, median of {args.rounds}")
    results: dict[tuple[str, str], dict[str, float]] = {}
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        for way in args.ways.split(","):
            for side in sides:
                runs = []
                for _ in range(args.rounds):
                    client.flushall()
                    runs.append(SIDES[side](client, server.url, args.jobs, WAYS[way]))
                results[side, way] = {f: statistics.median(r[f] for r in runs) for f in FIELDS}
                print(f"  {side:8} {way:4} " + "  ".join(
                    f"{f} {statistics.median(r[f] for r in runs):7.2f} "
                    f"[{' '.join(f'{r[f]:.2f}' for r in runs)}]" for f in FIELDS), flush=True)
        client.close()
    print()
    print("| way | side | script us/add | cpu us/add | script calls/add | wall us/add |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for (side, way), r in results.items():
        print(f"| {way} | {side} | {r['script_us']:.2f} | {r['cpu_us']:.2f} | "
              f"{r['calls']:.3f} | {r['wall_us']:.1f} |")
    if len(sides) == 2:
        print()
        print("| way | script us ratio (pyqueue/BullMQ) | cpu us ratio | wall ratio |")
        print("| --- | ---: | ---: | ---: |")
        for way in args.ways.split(","):
            p, b = results["pyqueue", way], results["bullmq", way]
            print(f"| {way} | {p['script_us'] / b['script_us']:.2f} | "
                  f"{p['cpu_us'] / b['cpu_us']:.2f} | {p['wall_us'] / b['wall_us']:.2f} |")


if __name__ == "__main__":
    main()
