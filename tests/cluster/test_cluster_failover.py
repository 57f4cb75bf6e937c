"""Failover on a real local Redis Cluster: the primary of a queue's slot is
killed (SIGKILL) while a producer adds and a worker processes; its replica
takes over. No acknowledged job that reached the replica is lost, and the
worker carries on without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.cluster
from _worker_helpers import wait_for

from pyqueue import AsyncQueue, Queue, Worker
from pyqueue.errors import RedisError
from pyqueue.testing import LocalRedisCluster


@pytest.fixture
def own_cluster() -> Iterator[LocalRedisCluster]:
    cluster = LocalRedisCluster(node_timeout_ms=1000)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def replicate(cluster: LocalRedisCluster, key: str) -> None:
    """Block until the slot's primary's writes so far reached its replica."""
    primary = cluster.primary_for(key)
    with redis.Redis(port=primary.port) as node:
        assert int(node.execute_command("WAIT", 1, 5000)) >= 1


async def test_kill_primary_under_load(own_cluster: LocalRedisCluster) -> None:
    name = "{failover}"
    url = own_cluster.url
    queue = AsyncQueue(name, connection=url)
    done: set[str] = set()

    async def process(job: Any) -> None:
        done.add(job.id)

    worker = Worker(name, process, connection=url, concurrency=10, lock_duration=2,
                    stalled_interval=1)
    acknowledged: list[str] = []
    try:
        for i in range(200):
            acknowledged.append((await queue.add("before", i)).id)
        replicate(own_cluster, f"bull:{name}:wait")
        await wait_for(lambda: len(done) >= 50, timeout=15, what="work under way")

        victim = own_cluster.primary_for(f"bull:{name}:wait")
        victim.kill()  # SIGKILL: the replica must take over
        killed_at = time.monotonic()

        # The producer keeps adding: adds refused while the slot has no primary
        # are not acknowledged (the caller sees the error and tries again).
        added_after = 0
        while added_after < 100:
            try:
                acknowledged.append((await queue.add("after", added_after)).id)
                added_after += 1
            except RedisError:
                assert time.monotonic() - killed_at < 30, "no primary took over"
                await asyncio.sleep(0.05)

        await wait_for(lambda: set(acknowledged) <= done, timeout=40,
                       what="every acknowledged job processed after the failover")
        assert worker.running
        counts = await queue.get_job_counts("completed", "waiting", "active")
        assert counts["waiting"] == 0
    finally:
        await worker.close()
        await queue.close()


async def test_graceful_failover_is_invisible(own_cluster: LocalRedisCluster) -> None:
    """CLUSTER FAILOVER: the old primary answers MOVED; pyqueue's connection to
    it resends those commands through redis-py and reconnects to the new one,
    so no call fails."""
    name = "{handover}"
    url = own_cluster.url
    queue = AsyncQueue(name, connection=url)
    done: set[str] = set()

    async def process(job: Any) -> None:
        done.add(job.id)

    worker = Worker(name, process, connection=url, concurrency=10)
    sync_queue = Queue(name, connection=url)
    try:
        ids = [(await queue.add("before", i)).id for i in range(50)]
        ids += [sync_queue.add("before-sync", i).id for i in range(5)]
        assert queue._slot is not None and queue._slot.fast is not None  # the fast paths
        assert sync_queue._slot is not None and sync_queue._slot.fast is not None
        old = own_cluster.primary_for(f"bull:{name}:wait")
        new = own_cluster.failover(f"bull:{name}:wait")
        assert new.port != old.port
        ids += [(await queue.add("after", i)).id for i in range(50)]  # none raises
        ids += [sync_queue.add("after-sync", i).id for i in range(5)]
        assert sync_queue._slot.fast is not None
        assert sync_queue._slot.fast.options.port == new.port
        await wait_for(lambda: set(ids) <= done, timeout=20, what="all jobs processed")
        fast = queue._slot.fast
        assert fast is not None and fast.connection.options.port == new.port
    finally:
        sync_queue.close()
        await worker.close()
        await queue.close()
