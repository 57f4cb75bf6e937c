"""Helpers of the flow tests (not a test module): a two-child tree, workers per
queue, a policy run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis

from pyqueue import AsyncFlowProducer, AsyncQueue, Worker
from tests._worker_helpers import wait_for


def h(r: redis.Redis, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(key).items()}


@asynccontextmanager
async def workers(redis_url: str, processors: dict[str, Any]) -> AsyncIterator[list[Worker]]:
    """One running worker per queue (``processors``: queue name -> processor)."""
    started = [Worker(q, p, connection=redis_url, autorun=False, shutdown_grace=2,
                      drain_delay=0.05) for q, p in processors.items()]
    for w in started:
        await w.start()
    try:
        yield started
    finally:
        for w in started:
            await w.close(force=True)


def tree(queue_name: str, **child_opts: Any) -> dict[str, Any]:
    """A parent in ``<q>p`` with two children in ``<q>c``: ``b`` (id 1) and ``a``
    (id 2, taking ``child_opts``; a one-slot worker runs it last)."""
    return {"name": "parent", "queue_name": f"{queue_name}p", "data": {"p": 1},
            "children": [
                {"name": "b", "queue_name": f"{queue_name}c", "data": {"v": 2}},
                {"name": "a", "queue_name": f"{queue_name}c", "data": {"v": 1},
                 "opts": child_opts},
            ]}


async def echo(job: Any) -> Any:
    return {"v": job.data.get("v")}


async def failing_a(job: Any) -> Any:
    if job.name == "a":
        raise RuntimeError("card declined")
    return job.name


async def run_policy(redis_url: str, queue_name: str, run_parent: bool,
                     **child_opts: Any) -> tuple[AsyncQueue, Any]:
    async with AsyncFlowProducer(connection=redis_url) as flows:
        node = await flows.add(tree(queue_name, **child_opts))
    pq = AsyncQueue(f"{queue_name}p", connection=redis_url)
    processors: dict[str, Any] = {f"{queue_name}c": failing_a}
    if run_parent:
        async def parent(job: Any) -> Any:
            return await job.get_dependencies()
        processors[f"{queue_name}p"] = parent
    async with workers(redis_url, processors):
        cq = AsyncQueue(f"{queue_name}c", connection=redis_url)
        await wait_for(lambda: cq.get_job_counts("completed", "failed"), what="children")
        await wait_for(lambda: counts_are(cq, completed=1, failed=1), what="children done")
        await cq.close()
        if run_parent:
            await wait_for(lambda: finished(pq, node.job.id), what="parent finished")
    return pq, await pq.get_job(node.job.id)


async def counts_are(q: AsyncQueue, **want: int) -> bool:
    return await q.get_job_counts(*want) == want


async def finished(q: AsyncQueue, job_id: str) -> bool:
    return await q.get_job_state(job_id) in ("completed", "failed")


async def state_is(q: AsyncQueue, job_id: str, state: str) -> bool:
    return await q.get_job_state(job_id) == state
