"""pyqueue on a real local Redis Cluster: the connection forms, the hash-tag
rule, and the engine's main scenarios (add, process, retry, delay, schedulers,
groups, dedup, events)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster
from _worker_helpers import wait_for

from pyqueue import AsyncQueue, Queue, QueueEvents, Worker
from pyqueue.errors import ConfigurationError
from pyqueue.testing import LocalRedisCluster, run_until_idle_async


def test_queue_add_and_read_sync(cluster_url: str, tagged_name: str) -> None:
    with Queue(tagged_name, connection=cluster_url) as queue:
        job = queue.add("mail", {"to": "a@example.com"})
        again = queue.get_job(job.id)
        assert again is not None and again.data == {"to": "a@example.com"}
        assert queue.get_job_counts("waiting")["waiting"] == 1


def test_redis_py_cluster_clients_accepted(redis_cluster: LocalRedisCluster,
                                           tagged_name: str) -> None:
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    try:
        with Queue(tagged_name, connection=client) as queue:
            queue.add("a", 1)
            assert queue.get_job_counts("waiting")["waiting"] == 1
    finally:
        client.close()


async def test_async_cluster_client_accepted(redis_cluster: LocalRedisCluster,
                                             tagged_name: str) -> None:
    client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    try:
        queue = AsyncQueue(tagged_name, connection=client)
        await queue.add("a", 1)
        assert (await queue.get_job_counts("waiting"))["waiting"] == 1
        await queue.close()
    finally:
        await client.aclose()


@pytest.mark.parametrize(("prefix", "name"), [("bull", "email"), ("bu{}ll", "email"),
                                              ("bull", "em}{ail")])
def test_keys_spanning_slots_are_refused(cluster_url: str, prefix: str, name: str) -> None:
    with pytest.raises(ConfigurationError, match="hash tag"):
        Queue(name, prefix=prefix, connection=cluster_url)
    with pytest.raises(ConfigurationError, match="hash tag"):
        Worker(name, lambda job: None, prefix=prefix, connection=cluster_url)


async def test_refused_before_any_write(redis_cluster: LocalRedisCluster) -> None:
    with pytest.raises(ConfigurationError):
        AsyncQueue("plain", connection=redis_cluster.url)
    with pytest.raises(ConfigurationError):
        QueueEvents("plain", connection=redis_cluster.url)
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    try:
        assert client.keys("bull:plain:*") == []
    finally:
        client.close()


@pytest.mark.parametrize("prefix, name", [("{bull}", "email"), ("bull", "{email}"),
                                          ("b{x}", "e")])
def test_hash_tag_in_prefix_or_name(cluster_url: str, prefix: str, name: str) -> None:
    with Queue(name, prefix=prefix, connection=cluster_url) as queue:
        queue.add("a", 1)
        queue.obliterate(force=True)


async def test_process_retry_delay(cluster_url: str, tagged_name: str) -> None:
    queue = AsyncQueue(tagged_name, connection=cluster_url)
    attempts: dict[str, int] = {}

    async def process(job: Any) -> Any:
        attempts[job.id] = attempts.get(job.id, 0) + 1
        if job.data.get("fail_once") and attempts[job.id] == 1:
            raise RuntimeError("first attempt fails")
        return job.data["n"] * 2

    try:
        await queue.add_bulk([{"name": "n", "data": {"n": i}} for i in range(20)])
        await queue.add("retry", {"n": 100, "fail_once": True}, attempts=2)
        await queue.add("later", {"n": 7}, delay=0.2)
        worker = Worker(tagged_name, process, connection=cluster_url, concurrency=5)
        try:
            async def all_done() -> bool:
                counts = await queue.get_job_counts("completed")
                return counts["completed"] == 22
            await wait_for(all_done, timeout=15, what="22 jobs completed")
            # The per-job calls went over pyqueue's connection to the slot's primary.
            slot = worker._conns.slot
            assert slot is not None and slot.fast is not None
            assert worker._conns.transport() is slot
        finally:
            await worker.close()
        counts = await queue.get_job_counts("completed", "failed", "waiting", "delayed")
        assert counts == {"completed": 22, "failed": 0, "waiting": 0, "delayed": 0}
        assert sorted(attempts.values()) == [1] * 21 + [2]
    finally:
        await queue.close()


async def test_dedup_and_custom_ids(cluster_url: str, tagged_name: str) -> None:
    queue = AsyncQueue(tagged_name, connection=cluster_url)
    try:
        first = await queue.add("a", 1, deduplication={"id": "d1"})
        second = await queue.add("a", 2, deduplication={"id": "d1"})
        assert first.id == second.id
        assert await queue.get_deduplication_job_id("d1") == first.id
        mine = await queue.add("b", 3, job_id="custom-1")
        same = await queue.add("b", 4, job_id="custom-1")
        assert mine.id == same.id == "custom-1"
    finally:
        await queue.close()


@pytest.mark.parametrize("pipelined", [True, False])
async def test_batched_adds_on_cluster(cluster_url: str, tagged_name: str,
                                       pipelined: bool) -> None:
    queue = AsyncQueue(tagged_name, connection=cluster_url, pipelined=pipelined)
    try:
        jobs = await asyncio.gather(*(queue.add("n", i) for i in range(100)),
                                    queue.add("d", 100, deduplication={"id": "d"}),
                                    queue.add("d", 101, deduplication={"id": "d"}))
        assert [int(job.id) for job in jobs[:100]] == list(range(1, 101))
        assert [job.data for job in jobs] == [*range(101), 100]
        assert await queue.get_job_counts("waiting") == {"waiting": 101}
    finally:
        await queue.close()


async def test_scheduler_and_groups(cluster_url: str, tagged_name: str) -> None:
    queue = AsyncQueue(tagged_name, connection=cluster_url)
    seen: list[str] = []
    try:
        await queue.upsert_job_scheduler("tick", every=0.05, template={"name": "tick"},
                                         limit=3)
        for i in range(6):
            await queue.add("g", i, group=f"g{i % 2}")

        async def process(job: Any) -> None:
            seen.append(job.name)

        worker = Worker(tagged_name, process, connection=cluster_url, concurrency=4)
        try:
            await wait_for(lambda: seen.count("tick") >= 3 and seen.count("g") == 6,
                           timeout=15, what="scheduler iterations and group jobs")
        finally:
            await worker.close()
    finally:
        await queue.close()


async def test_events_on_cluster(cluster_url: str, tagged_name: str) -> None:
    queue = AsyncQueue(tagged_name, connection=cluster_url)
    events = QueueEvents(tagged_name, connection=cluster_url, block_ms=200)
    completed: asyncio.Queue[str] = asyncio.Queue()
    events.on("completed", lambda event: completed.put_nowait(event.job_id))
    await events.start()
    try:
        job = await queue.add("x", 1)
        await run_until_idle_async(tagged_name, lambda job: "ok", connection=cluster_url,
                                   timeout=10)
        assert await asyncio.wait_for(completed.get(), 10) == job.id
    finally:
        await events.close()
        await queue.close()


def test_library_loaded_on_the_slots_primary(redis_cluster: LocalRedisCluster,
                                             cluster_url: str, tagged_name: str) -> None:
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    try:
        client.execute_command("FUNCTION", "FLUSH", target_nodes=client.PRIMARIES)
        with Queue(tagged_name, connection=cluster_url) as queue:
            queue.add("a", 1)  # FCALL finds no library: redone with EVAL + FUNCTION LOAD
            queue.add("b", 2)
            assert queue.get_job_counts("waiting")["waiting"] == 2
        primary = redis_cluster.primary_for(f"bull:{tagged_name}:wait")
        with redis.Redis(port=primary.port) as node:
            assert node.function_list() != []
    finally:
        client.close()


async def test_limits_and_pause(cluster_url: str, tagged_name: str) -> None:
    queue = AsyncQueue(tagged_name, connection=cluster_url)
    running = 0
    most = 0
    seen = 0

    async def process(job: Any) -> None:
        nonlocal running, most, seen
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)  # the job's work: lets others overlap if allowed
        running -= 1
        seen += 1

    try:
        await queue.set_global_concurrency(2)
        await queue.pause()
        assert await queue.is_paused()
        await queue.add_bulk([{"name": "n", "data": i} for i in range(20)])
        worker = Worker(tagged_name, process, connection=cluster_url, concurrency=8,
                        limiter={"max": 100, "duration": 1})
        try:
            await queue.resume()
            await wait_for(lambda: seen == 20, timeout=15, what="20 jobs")
        finally:
            await worker.close()
        assert most <= 2
    finally:
        await queue.close()


async def test_def_processor_in_threads(cluster_url: str, tagged_name: str) -> None:
    """A plain ``def`` processor runs in a thread; its job calls (progress, log)
    go through the worker's sync cluster client."""
    queue = AsyncQueue(tagged_name, connection=cluster_url)

    def process(job: Any) -> int:
        job.update_progress(50)
        job.log("halfway")
        return int(job.data) + 1

    try:
        job = await queue.add("n", 41)
        await run_until_idle_async(tagged_name, process, connection=cluster_url, timeout=15)
        done = await queue.get_job(job.id)
        assert done is not None and done.return_value == 42 and done.progress == 50
        assert await done.get_logs() == ["halfway"]
    finally:
        await queue.close()
