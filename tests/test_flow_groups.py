"""Groups inside flows: a flow job with a ``group`` waits in its group once it is
ready (a child at once, a parent when its children are done), and the group's
concurrency applies, in the flow's other queues as in the script's own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from pyqueue import AsyncFlowProducer, AsyncJob, AsyncQueue, Worker
from tests._worker_helpers import wait_for


@pytest.fixture
async def flows(redis_url: str) -> AsyncIterator[AsyncFlowProducer]:
    async with AsyncFlowProducer(connection=redis_url) as producer:
        yield producer


class Probe:
    """How many jobs of each group ran at once, at most."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}

    async def process(self, job: AsyncJob) -> Any:
        if job.name == "parent":
            return sorted((await job.get_children_values()).values())
        g = job.group or "-"
        self.running[g] = self.running.get(g, 0) + 1
        self.most[g] = max(self.most.get(g, 0), self.running[g])
        await asyncio.sleep(0.02)  # overlap the jobs the worker runs at once
        self.running[g] -= 1
        return job.data["n"]


def child(queue: str, n: int, group: str | None, **opts: Any) -> dict[str, Any]:
    if group is not None:
        opts["group"] = group
    return {"name": "send", "queue_name": queue, "data": {"n": n}, "opts": opts}


async def test_grouped_children_wait_in_their_group_and_its_limit_applies(
        flows: AsyncFlowProducer, queue_name: str, redis_url: str,
        redis_client: redis.Redis) -> None:
    p, c = f"{queue_name}p", f"{queue_name}c"
    node = await flows.add({"name": "parent", "queue_name": p, "data": {}, "children": [
        *[child(c, n, "a.example") for n in range(4)],
        *[child(c, n, "b.example") for n in range(4, 6)],
        child(c, 6, None), child(c, 7, "b.example", delay=0.05)]})
    grouped = [n.job for n in node.children if n.job.data["n"] < 6]
    assert [await j.get_state() for j in grouped] == ["waiting"] * 6
    assert redis_client.zcard(f"bull:{c}:g:a.example:wait") == 4
    assert redis_client.llen(f"bull:{c}:wait") == 1  # the ungrouped one
    assert redis_client.zcard(f"bull:{c}:gr:delayed") == 1
    assert redis_client.hget(f"bull:{c}:{grouped[0].id}", "gid") == b"a.example"
    assert grouped[0].group == "a.example"
    async with AsyncQueue(c, connection=redis_url) as children:
        await children.set_group_concurrency(1)
        probe = Probe()
        async with Worker(c, probe.process, connection=redis_url, concurrency=6,
                          shutdown_grace=2), \
                Worker(p, probe.process, connection=redis_url, shutdown_grace=2):
            assert await node.job.wait_until_finished(timeout=20) == list(range(8))
    assert probe.most["a.example"] == 1 and probe.most["b.example"] == 1


async def test_a_grouped_parent_waits_in_its_group_once_released(
        flows: AsyncFlowProducer, queue_name: str, redis_url: str,
        redis_client: redis.Redis) -> None:
    q = f"{queue_name}q"
    parents = [await flows.add({"name": "parent", "queue_name": q, "data": {},
                                "opts": {"group": "tenant-1"},
                                "children": [child(f"{queue_name}c", i, None)]})
               for i in range(2)]
    assert await parents[0].job.get_state() == "waiting-children"
    async with Worker(f"{queue_name}c", Probe().process, connection=redis_url,
                      shutdown_grace=2):
        async def released() -> bool:
            return redis_client.zcard(f"bull:{q}:g:tenant-1:wait") == 2
        await wait_for(released, timeout=20)
    assert redis_client.llen(f"bull:{q}:wait") == 0
    assert await parents[0].job.get_state() == "waiting"
    events = [{k.decode(): v.decode() for k, v in f.items()}
              for _, f in redis_client.xrange(f"bull:{q}:events")]
    assert {"event": "waiting", "jobId": parents[0].job.id, "prev": "waiting-children"} \
        in events
    async with AsyncQueue(q, connection=redis_url) as queue:
        assert (await queue.get_group_counts())["tenant-1"]["waiting"] == 2
        async with Worker(q, Probe().process, connection=redis_url, shutdown_grace=2):
            for node in parents:
                assert len(await node.job.wait_until_finished(timeout=20)) == 1


async def test_a_grouped_delayed_parent_goes_to_the_groups_delayed_set(
        flows: AsyncFlowProducer, queue_name: str, redis_url: str,
        redis_client: redis.Redis) -> None:
    q = f"{queue_name}q"
    node = await flows.add({"name": "parent", "queue_name": q, "data": {},
                            "opts": {"group": "g", "delay": 60},
                            "children": [child(q, 1, None)]})
    async with Worker(q, Probe().process, connection=redis_url, shutdown_grace=2):
        await wait_for(lambda: redis_client.zscore(f"bull:{q}:gr:delayed", node.job.id)
                       is not None, timeout=20)
    assert redis_client.zscore(f"bull:{q}:delayed", node.job.id) is None
    assert await node.job.get_state() == "delayed"


async def test_drain_of_grouped_children_releases_their_parent(
        flows: AsyncFlowProducer, queue_name: str, redis_url: str) -> None:
    p, c = f"{queue_name}p", f"{queue_name}c"
    node = await flows.add({"name": "parent", "queue_name": p, "data": {}, "children": [
        child(c, 1, "g1"), child(c, 2, "g2"), child(c, 3, "g2", delay=60)]})
    async with AsyncQueue(c, connection=redis_url) as children:
        await children.drain()
        assert await node.job.get_state() == "waiting-children"  # the delayed one
        await children.drain(delayed=True)
        assert await children.get_group_counts() == {}
    assert await node.job.get_state() == "waiting"


async def test_queue_add_with_parent_and_group(flows: AsyncFlowProducer, queue_name: str,
                                               redis_url: str,
                                               redis_client: redis.Redis) -> None:
    node = await flows.add({"name": "parent", "queue_name": f"{queue_name}p", "data": {},
                            "children": [child(f"{queue_name}c", 0, None)]})
    async with AsyncQueue(f"{queue_name}c", connection=redis_url) as c:
        added = await c.add("send", {"n": 1}, group="g1",
                            parent={"id": node.job.id, "queue": f"{queue_name}p"})
        assert added.group == "g1" and added.parent is not None
        assert redis_client.zcard(f"bull:{queue_name}c:g:g1:wait") == 1
        async with Worker(f"{queue_name}c", Probe().process, connection=redis_url,
                          shutdown_grace=2), \
                Worker(f"{queue_name}p", Probe().process, connection=redis_url,
                       shutdown_grace=2):
            assert await node.job.wait_until_finished(timeout=20) == [0, 1]
