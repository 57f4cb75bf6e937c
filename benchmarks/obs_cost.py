"""The cost of observability per job: the same no-op jobs through one pyqueue worker with
each feature off and on (BullMQ metrics, Prometheus hooks, OpenTelemetry, log
context), on a throwaway Redis; variants interleaved, medians reported.

Run:  python -m benchmarks.obs_cost [--jobs 5000] [--reps 3] [--concurrency 50]
(needs the prometheus and otel extras; `.[dev]` has them).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis

from pyqueue import AsyncQueue, Worker
from pyqueue.testing import RedisServer


async def noop(job: Any) -> None:
    return None


def _variants() -> dict[str, Callable[[], dict[str, Any]]]:
    from opentelemetry.sdk.trace import TracerProvider

    from pyqueue.logcontext import JobContextHook
    from pyqueue.otel import PyqueueInstrumentor
    from pyqueue.prometheus import PrometheusHooks
    from pyqueue.statsd import StatsdHooks

    provider = TracerProvider()  # spans are made and ended, exported nowhere
    prometheus = PrometheusHooks()

    def plain() -> dict[str, Any]:
        PyqueueInstrumentor().uninstrument()
        return {}

    def traced() -> dict[str, Any]:
        PyqueueInstrumentor().instrument(tracer_provider=provider)
        return {}

    return {
        "off": plain,
        "bullmq metrics": lambda: {**plain(), "metrics": {"max_data_points": 10080}},
        "prometheus hooks": lambda: {**plain(), "hooks": [prometheus]},
        "log context": lambda: {**plain(), "hooks": [JobContextHook()]},
        "statsd": lambda: {**plain(), "hooks": [StatsdHooks("127.0.0.1", 9)]},  # discard port
        "otel": traced,
    }


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def one_run(url: str, queue: str, jobs: int, concurrency: int,
                  options: dict[str, Any]) -> tuple[float, float, float]:
    """(jobs per second, worker CPU us per job, Redis CPU us per job) for ``jobs``
    pre-loaded jobs. CPU times hold up better than wall time on a busy machine."""
    probe = redis.Redis.from_url(url)
    async with AsyncQueue(queue, connection=url) as q:
        for start in range(0, jobs, 1000):
            await q.add_bulk([{"name": "n", "data": {}} for _ in range(start, min(jobs,
                                                                              start + 1000))])
        worker = Worker(queue, noop, connection=url, concurrency=concurrency, log_jobs=False,
                        autorun=False, remove_on_complete=True, **options)
        started, cpu, server = time.perf_counter(), time.process_time(), _redis_cpu(probe)
        await worker.start()
        while worker.jobs_processed < jobs:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        cpu, server = time.process_time() - cpu, _redis_cpu(probe) - server
        await worker.close()
        await q.obliterate(force=True)
    probe.close()
    return jobs / elapsed, cpu / jobs * 1e6, server / jobs * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    variants = _variants()
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    with RedisServer() as server:
        for rep in range(args.reps):
            for name, make in variants.items():
                results[name].append(asyncio.run(one_run(
                    server.url, f"cost-{rep}-{name}", args.jobs, args.concurrency, make())))

    def median(name: str, i: int) -> float:
        return statistics.median(r[i] for r in results[name])

    print(f"{args.jobs} no-op jobs, concurrency {args.concurrency}, medians of {args.reps}")
    print(f"  {'':17} {'jobs/s':>8} {'ratio':>6} {'worker CPU/job':>15} {'Redis CPU/job':>14}")
    for name in results:
        print(f"  {name:17} {median(name, 0):8.0f} {median(name, 0) / median('off', 0):6.2f} "
              f"{median(name, 1):9.1f} us ({median(name, 1) - median('off', 1):+5.1f}) "
              f"{median(name, 2):7.1f} us ({median(name, 2) - median('off', 2):+4.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
