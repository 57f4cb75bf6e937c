"""Benchmark figure: one flow parent with many children (10,000 by default).

Reports the time to add the flow (one addFlow script call) and how long Redis
spent inside that call (``SLOWLOG``), the Redis memory it took, the time for
a worker to run every child until the parent is released, and the time of
``get_children_values()`` on the parent. Run it from the checkout::

    python -m benchmarks.flow_big [--children 10000] [--concurrency 50] [--url redis://...]

Without ``--url`` it starts a throwaway ``redis-server`` (see ``micro_add``).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import redis

from pyqueue import AsyncQueue, FlowProducer, Worker

from .micro_add import _server


async def _run_children(url: str, queue: str, parent_queue: str, parent_id: str,
                        concurrency: int) -> float:
    async def work(job: object) -> int:
        return 1

    async with AsyncQueue(parent_queue, connection=url) as parents:
        begun = time.perf_counter()
        async with Worker(queue, work, connection=url, concurrency=concurrency):
            while await parents.get_job_state(parent_id) != "waiting":
                await asyncio.sleep(0.01)
        return time.perf_counter() - begun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    with _server(args.url) as url:
        client = redis.Redis.from_url(url)
        client.config_set("slowlog-log-slower-than", 0)
        client.slowlog_reset()
        before = int(client.info("memory")["used_memory"])
        with FlowProducer(connection=url) as flows:
            begun = time.perf_counter()
            node = flows.add({"name": "campaign", "queue_name": "bench-flow-parent", "data": {},
                              "children": [{"name": "mail", "queue_name": "bench-flow-child",
                                            "data": {"i": i}} for i in range(args.children)]})
            add_s = time.perf_counter() - begun
        inside_ms = max(entry["duration"] for entry in client.slowlog_get(128)) / 1000
        memory_mb = (int(client.info("memory")["used_memory"]) - before) / 1e6
        run_s = asyncio.run(_run_children(url, "bench-flow-child", "bench-flow-parent",
                                          node.job.id, args.concurrency))
        with FlowProducer(connection=url) as flows:
            parent = flows.get_flow(node.job.id, "bench-flow-parent", depth=0)
            assert parent is not None
            begun = time.perf_counter()
            values = parent.job.get_children_values()
            values_ms = (time.perf_counter() - begun) * 1000
        assert len(values) == args.children
        print(f"children={args.children} add={add_s:.3f}s (inside Redis {inside_ms:.0f} ms) "
              f"memory=+{memory_mb:.1f}MB run+release={run_s:.2f}s "
              f"(concurrency {args.concurrency}) get_children_values={values_ms:.0f}ms")
        for key in client.scan_iter(match="bull:bench-flow-*"):
            client.delete(key)
        client.close()


if __name__ == "__main__":
    main()
