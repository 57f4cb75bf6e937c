"""A sharded queue (pyqueue.sharded) on a real local Redis Cluster: shards
spread over the primaries, adds are routed, reads aggregate, one worker per
shard drains them all (global limits: test_sharded_limits.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any
from uuid import uuid4

import pytest
import redis
from _worker_helpers import wait_for

from pyqueue.errors import ConfigurationError, InvalidJobOptionsError
from pyqueue.sharded import (
    AsyncShardedQueue,
    ShardedQueue,
    ShardedQueueEvents,
    ShardedWorker,
    shard_names,
)
from pyqueue.testing import LocalRedisCluster


@pytest.fixture
def base_name() -> str:
    return f"s{uuid4().hex[:10]}"


def test_shards_spread_over_every_primary(redis_cluster: LocalRedisCluster,
                                          base_name: str) -> None:
    names = shard_names(base_name, 6)
    assert len(set(names)) == 6 and all(n.startswith("{") and n.endswith("}") for n in names)
    primaries = Counter(redis_cluster.primary_for(f"bull:{n}:wait").port for n in names)
    assert len(primaries) == 3 and set(primaries.values()) == {2}
    assert shard_names(base_name, 6) == names  # deterministic: every process agrees


def test_sync_routing_and_aggregates(cluster_url: str, base_name: str) -> None:
    with ShardedQueue(base_name, shards=4, connection=cluster_url) as queue:
        jobs = [queue.add("n", i) for i in range(40)]
        assert len({job.id for job in jobs}) == 40
        per_shard = Counter(job.queue_name for job in jobs)
        assert set(per_shard.values()) == {10}  # in turn
        assert queue.get_job_counts("waiting") == {"waiting": 40}
        found = queue.get_job(jobs[17].id)
        assert found is not None and found.data == 17
        custom = queue.add("c", "x", job_id="order-9")
        assert queue.add("c", "y", job_id="order-9").id == custom.id
        assert queue.get_job("order-9") is not None
        grouped = [queue.add("g", i, group="tenant-1") for i in range(5)]
        assert len({job.queue_name for job in grouped}) == 1
        bulk = queue.add_bulk([{"name": "b", "data": i} for i in range(8)])
        assert [job.data for job in bulk] == list(range(8))
        assert queue.get_job_counts("waiting")["waiting"] == 54
        assert len(queue.get_jobs("waiting", 0, 9)) == 10
        with pytest.raises(InvalidJobOptionsError):
            queue.add("x", 1, job_id="a", shard_key="b")
        queue.obliterate(force=True)


def test_bad_sharding_refused(cluster_url: str) -> None:
    with pytest.raises(ConfigurationError):
        ShardedQueue("{mail}", shards=4, connection=cluster_url)
    with pytest.raises(ConfigurationError):
        ShardedQueue("mail", shards=4, prefix="{bull}", connection=cluster_url)
    with pytest.raises(ConfigurationError):
        ShardedQueue("mail", shards=0, connection=cluster_url)


async def test_worker_drains_every_shard(cluster_url: str, base_name: str) -> None:
    queue = AsyncShardedQueue(base_name, shards=6, connection=cluster_url)
    seen: Counter[str] = Counter()

    async def process(job: Any) -> None:
        seen[job.queue_name] += 1

    try:
        await queue.add_bulk([{"name": "n", "data": i} for i in range(60)])
        await queue.add("dedup", 1, deduplication={"id": "once"})
        await queue.add("dedup", 2, deduplication={"id": "once"})
        worker = ShardedWorker(base_name, process, shards=6, connection=cluster_url,
                               concurrency=3)
        try:
            await wait_for(lambda: sum(seen.values()) >= 61, timeout=20,
                           what="every shard drained")
        finally:
            await worker.close()
        assert len(seen) == 6 and sum(seen.values()) == 61
        counts = await queue.get_job_counts("completed", "waiting")
        assert counts == {"completed": 61, "waiting": 0}
    finally:
        await queue.obliterate(force=True)
        await queue.close()


def test_sharded_queue_on_one_server(redis_url: str, base_name: str) -> None:
    with ShardedQueue(base_name, shards=3, connection=redis_url) as queue:
        job = queue.add("a", 1)
        assert queue.get_job(job.id) is not None
        assert queue.get_job_counts("waiting") == {"waiting": 1}
        queue.obliterate(force=True)
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys(f"bull:{{{base_name}*") == []


async def test_events_of_every_shard(cluster_url: str, base_name: str) -> None:
    queue = AsyncShardedQueue(base_name, shards=3, connection=cluster_url)
    events = ShardedQueueEvents(base_name, shards=3, connection=cluster_url, block_ms=200)
    completed: set[str] = set()
    events.on("completed", lambda event: completed.add(event.job_id))
    await events.start()
    try:
        jobs = await queue.add_bulk([{"name": "n", "data": i} for i in range(9)])
        worker = ShardedWorker(base_name, lambda job: None, shards=3, connection=cluster_url)
        try:
            await wait_for(lambda: completed == {job.id for job in jobs}, timeout=15,
                           what="a completed event from every shard")
        finally:
            await worker.close()
        assert len({job.queue_name for job in jobs}) == 3
    finally:
        await events.close()
        await queue.obliterate(force=True)
        await queue.close()
