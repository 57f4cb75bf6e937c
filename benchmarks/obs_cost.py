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

from pyqueue import AsyncQueue, Worker
from pyqueue.testing import RedisServer


async def noop(job: Any) -> None:
    return None


def _variants() -> dict[str, Callable[[], dict[str, Any]]]:
    from opentelemetry.sdk.trace import TracerProvider

    from pyqueue.logcontext import JobContextHook
    from pyqueue.otel import PyqueueInstrumentor
    from pyqueue.prometheus import PrometheusHooks

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
        "otel": traced,
    }


async def one_run(url: str, queue: str, jobs: int, concurrency: int,
                  options: dict[str, Any]) -> float:
    """Jobs per second to process ``jobs`` pre-loaded jobs."""
    async with AsyncQueue(queue, connection=url) as q:
        for start in range(0, jobs, 1000):
            await q.add_bulk([{"name": "n", "data": {}} for _ in range(start, min(jobs,
                                                                              start + 1000))])
        worker = Worker(queue, noop, connection=url, concurrency=concurrency, log_jobs=False,
                        autorun=False, remove_on_complete=True, **options)
        started = time.perf_counter()
        await worker.start()
        while worker.jobs_processed < jobs:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        await worker.close()
        await q.obliterate(force=True)
    return jobs / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    variants = _variants()
    results: dict[str, list[float]] = {name: [] for name in variants}
    with RedisServer() as server:
        for rep in range(args.reps):
            for name, make in variants.items():
                rate = asyncio.run(one_run(server.url, f"cost-{rep}-{len(results[name])}",
                                           args.jobs, args.concurrency, make()))
                results[name].append(rate)
    base = statistics.median(results["off"])
    print(f"{args.jobs} no-op jobs, concurrency {args.concurrency}, {args.reps} reps "
          "(median jobs/s, ratio to off, extra microseconds per job)")
    for name, rates in results.items():
        median = statistics.median(rates)
        extra_us = (1 / median - 1 / base) * 1e6
        print(f"  {name:17} {median:8.0f}/s  x{median / base:.3f}  {extra_us:+.1f} us/job")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
