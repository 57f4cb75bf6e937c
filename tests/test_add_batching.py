"""``AsyncQueue.add`` batches concurrent adds (see pyqueue/_add_batch.py):
adds pending together go to Redis as one addJob call, and each caller still
gets its own job or its own error, with ids, events and deduplication as
sequential adds would give them. Against a real Redis; script calls are
counted with ``INFO commandstats``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from pyqueue import AsyncQueue, InvalidJobOptionsError, RedisDataError, RedisStateError
from pyqueue.testing import RedisServer

SCRIPT_CALLS = ("cmdstat_fcall", "cmdstat_evalsha", "cmdstat_eval")


def script_calls(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return sum(int(stats[name]["calls"]) for name in SCRIPT_CALLS if name in stats)


def events(client: redis.Redis, queue_name: str) -> list[tuple[str, ...]]:
    """The queue's events: name and the fields that name jobs, in order."""
    out = []
    for _, fields in client.xrange(f"bull:{queue_name}:events"):
        f = {k.decode(): v.decode() for k, v in fields.items()}
        out.append((f["event"], f.get("jobId", ""), f.get("deduplicatedJobId", "")))
    return out


@pytest.fixture
def queue(async_queue: AsyncQueue) -> AsyncQueue:
    return async_queue


async def test_gather_of_200_adds_gives_200_jobs_in_order_in_few_calls(
        queue: AsyncQueue, redis_client: redis.Redis) -> None:
    await queue.add("warm-up")  # connection, clock and library in place
    before = script_calls(redis_client)
    jobs = await asyncio.gather(*(queue.add("n", {"i": i}) for i in range(200)))
    calls = script_calls(redis_client) - before

    assert [job.data for job in jobs] == [{"i": i} for i in range(200)]
    ids = [int(job.id) for job in jobs]
    assert ids == list(range(2, 202))  # distinct, in the order of the calls
    assert calls <= 3, f"{calls} script calls for 200 adds"
    stored = [await queue.get_job(str(i)) for i in (2, 101, 201)]
    assert [job.data if job else None for job in stored] == [{"i": 0}, {"i": 99}, {"i": 199}]
    assert await queue.get_job_counts("waiting") == {"waiting": 201}


async def test_adds_awaited_one_by_one_are_one_call_each(
        queue: AsyncQueue, redis_client: redis.Redis) -> None:
    await queue.add("warm-up")
    before = script_calls(redis_client)
    ids = [(await queue.add("n", i)).id for i in range(10)]
    assert script_calls(redis_client) - before == 10  # alone: never held back for a batch
    assert ids == [str(i) for i in range(2, 12)]


async def test_order_holds_on_a_redis_py_client_too(redis_url: str, queue_name: str) -> None:
    # pipelined=False: redis-py's client, a pool of connections and a task per
    # call, which keep no order between calls in flight together.
    async with AsyncQueue(queue_name, connection=redis_url, pipelined=False) as queue:
        for _ in range(3):
            jobs = await asyncio.gather(*(queue.add("n", i) for i in range(50)))
            assert [job.data for job in jobs] == list(range(50))
            assert [int(job.id) for job in jobs] == sorted(int(job.id) for job in jobs)


async def test_batched_adds_write_the_ids_and_events_of_sequential_adds(
        redis_url: str, queue_name: str, redis_client: redis.Redis) -> None:
    specs: list[dict[str, Any]] = [
        {}, {"priority": 3}, {"delay": 60}, {"job_id": "custom"}, {"lifo": True},
        {"job_id": "custom"}, {"deduplication": {"id": "d"}}, {"deduplication": {"id": "d"}},
        {"group": "g1"},
    ]
    async with AsyncQueue(f"{queue_name}-seq", connection=redis_url) as one_by_one, \
            AsyncQueue(f"{queue_name}-batch", connection=redis_url) as together:
        sequential = [await one_by_one.add("n", i, **spec) for i, spec in enumerate(specs)]
        before = script_calls(redis_client)
        batched = await asyncio.gather(*(together.add("n", i, **spec)
                                         for i, spec in enumerate(specs)))
        assert script_calls(redis_client) - before <= 2  # the first alone, then the rest
        assert [(j.id, j.data) for j in batched] == [(j.id, j.data) for j in sequential]
        assert [j.id for j in batched][5:8] == ["custom", "7", "7"]  # taken id, deduplicated
        assert events(redis_client, f"{queue_name}-batch") == \
            events(redis_client, f"{queue_name}-seq")
        for state in ("waiting", "prioritized", "delayed"):
            assert [j.id for j in await together.get_jobs(state)] == \
                [j.id for j in await one_by_one.get_jobs(state)]


async def test_deduplication_inside_one_batch_is_as_sequential(
        queue: AsyncQueue, redis_client: redis.Redis) -> None:
    await queue.add("warm-up")
    before = script_calls(redis_client)
    jobs = await asyncio.gather(
        *(queue.add("d", {"i": i}, deduplication={"id": "same"}) for i in range(5)),
        *(queue.add("t", {"i": i}, deduplication={"id": "ttl", "ttl": 60}) for i in range(3)))
    assert script_calls(redis_client) - before <= 2
    simple, throttled = jobs[:5], jobs[5:]
    assert {job.id for job in simple} == {simple[0].id}
    assert [job.data for job in simple] == [{"i": 0}] * 5  # every caller gets the owner
    assert {job.id for job in throttled} == {throttled[0].id} != {simple[0].id}
    assert await queue.get_job_counts("waiting") == {"waiting": 3}
    deduplicated = [e for e in events(redis_client, queue.name) if e[0] == "deduplicated"]
    assert len(deduplicated) == 4 + 2


async def test_a_bad_add_in_a_gather_raises_for_its_caller_only(
        queue: AsyncQueue, redis_client: redis.Redis) -> None:
    await queue.add("warm-up")
    # Invalid options: refused before anything is sent.
    results = await asyncio.gather(queue.add("a", 1), queue.add("b", 2, priority=-1),
                                   queue.add("c", 3), return_exceptions=True)
    assert isinstance(results[1], InvalidJobOptionsError)
    assert [r.data for r in (results[0], results[2])] == [1, 3]  # type: ignore[union-attr]

    # A Redis error while adding one job of a batch (its group's key was
    # damaged): that job's caller gets the error, the others their jobs.
    redis_client.set(f"bull:{queue.name}:g:broken:wait", "not a zset")
    before = script_calls(redis_client)
    results = await asyncio.gather(
        *(queue.add("ok", i) for i in range(3)), queue.add("bad", 3, group="broken"),
        *(queue.add("ok", i) for i in range(4, 6)), return_exceptions=True)
    assert script_calls(redis_client) - before <= 2
    assert isinstance(results[3], RedisDataError)
    assert results[3].code == "WRONGTYPE"
    fine = [r for i, r in enumerate(results) if i != 3]
    assert all(not isinstance(r, BaseException) for r in fine), fine
    for job in fine:
        assert await queue.get_job_state(job.id) == "waiting"  # type: ignore[union-attr]
    with pytest.raises(RedisDataError):  # as the same add alone fails
        await queue.add("bad", 3, group="broken")

    # A taken custom id whose key is damaged: the read of the existing job
    # fails for its caller only.
    redis_client.set(f"bull:{queue.name}:damaged", "not a hash")
    results = await asyncio.gather(queue.add("ok", 1), queue.add("x", 2, job_id="damaged"),
                                   queue.add("ok", 3), return_exceptions=True)
    assert isinstance(results[1], RedisDataError)
    assert [r.data for r in (results[0], results[2])] == [1, 3]  # type: ignore[union-attr]


async def test_a_call_that_fails_whole_fails_each_caller_with_its_own_error(
        fresh_redis: RedisServer) -> None:
    client = redis.Redis.from_url(fresh_redis.url)
    async with AsyncQueue("oom", connection=fresh_redis.url) as queue:
        await queue.add("warm-up")
        client.config_set("maxmemory", 1)  # adds are refused whole while out of memory
        try:
            results = await asyncio.gather(*(queue.add("n", i) for i in range(5)),
                                           return_exceptions=True)
        finally:
            client.config_set("maxmemory", 0)
        assert all(isinstance(r, RedisStateError) and r.code == "OOM" for r in results), results
        assert len({id(r) for r in results}) == 5  # each caller raises its own
        assert await queue.get_job_counts("waiting") == {"waiting": 1}
    client.close()


async def test_an_add_cancelled_before_it_was_sent_is_left_out(
        queue: AsyncQueue, redis_client: redis.Redis) -> None:
    await queue.add("warm-up")
    first = asyncio.ensure_future(queue.add("n", 1))  # sent at once: nothing in flight
    second = asyncio.ensure_future(queue.add("n", 2))  # waits for the iteration's end
    third = asyncio.ensure_future(queue.add("n", 3))
    await asyncio.sleep(0)  # the three have started; the batch is not sent yet
    second.cancel()
    done = await asyncio.gather(first, third)
    assert second.cancelled()
    assert [job.data for job in done] == [1, 3]
    assert await queue.get_job_counts("waiting") == {"waiting": 3}
    assert not any(e[1] == "" for e in events(redis_client, queue.name))


async def test_adds_awaited_one_by_one_keep_their_order_beside_a_gather(
        queue: AsyncQueue) -> None:
    async def one_by_one() -> list[int]:
        return [int((await queue.add("seq", i)).id) for i in range(20)]

    ids, _ = await asyncio.gather(one_by_one(),
                                  asyncio.gather(*(queue.add("g", i) for i in range(100))))
    assert ids == sorted(ids)
    assert [(await queue.get_job(str(i))).data for i in ids] == list(range(20))  # type: ignore[union-attr]
