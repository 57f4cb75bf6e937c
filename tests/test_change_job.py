"""``job.change_priority`` and ``job.change_delay`` (lua/changePriority.lua,
lua/changeDelay.lua): a waiting job moves to its new place, a delayed one keeps
or moves its due time; other states and bad values are refused before any write."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from pyqueue import AsyncQueue, InvalidJobOptionsError, Queue
from pyqueue.errors import JobNotFoundError, JobStateError


def order(queue: Queue) -> list[str]:
    """Ids in the order workers take them: wait (oldest first), then prioritized."""
    waiting = [j.id for j in queue.get_jobs("waiting", asc=True)]
    prioritized = [j.id for j in queue.get_jobs("prioritized", asc=True)]
    return waiting + prioritized


def test_a_waiting_job_moves_to_its_new_priority(redis_url: str, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as queue:
        queue.add("a", {}, job_id="plain")
        queue.add("b", {}, job_id="p5", priority=5)
        queue.add("c", {}, job_id="p2", priority=2)
        queue.add("d", {}, job_id="p2b", priority=2)
        assert order(queue) == ["plain", "p2", "p2b", "p5"]
        job = queue.get_job("p5")
        assert job is not None
        job.change_priority(1)
        assert job.priority == 1
        assert order(queue) == ["plain", "p5", "p2", "p2b"]
        plain = queue.get_job("plain")
        assert plain is not None
        plain.change_priority(2)  # from wait to prioritized: last of priority 2
        assert order(queue) == ["p5", "p2", "p2b", "plain"]
        queue.get_job("p2").change_priority(0)  # type: ignore[union-attr]
        assert order(queue) == ["p2", "p5", "p2b", "plain"]
        assert queue.get_job_state("p2") == "waiting"
        fresh = queue.get_job("plain")
        assert fresh is not None and fresh.priority == 2
        assert fresh.opts.get("priority") is None  # opts keep what the producer asked


def test_a_delayed_job_keeps_its_due_time(redis_url: str, queue_name: str,
                                          redis_client: redis.Redis) -> None:
    with Queue(queue_name, connection=redis_url) as queue:
        job = queue.add("later", {}, job_id="d", delay=3600)
        key = f"bull:{queue_name}:delayed"
        score = redis_client.zscore(key, "d")
        job.change_priority(3)
        assert redis_client.zscore(key, "d") == score
        assert queue.get_job_state("d") == "delayed"
        job.promote()
        assert queue.get_job_state("d") == "prioritized"


def test_a_grouped_job_is_placed_in_its_group(redis_url: str, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as queue:
        queue.add("a", {}, job_id="g1", group="gmail.com")
        queue.add("b", {}, job_id="g2", group="gmail.com")
        queue.get_job("g2").change_priority(1)  # type: ignore[union-attr]
        assert queue.get_group_counts() == {"gmail.com": {"waiting": 2, "active": 0}}
        assert queue.get_job_state("g2") == "waiting"


def test_change_delay_moves_the_due_time(redis_url: str, queue_name: str,
                                         redis_client: redis.Redis) -> None:
    with Queue(queue_name, connection=redis_url) as queue:
        job = queue.add("later", {}, job_id="d", delay=3600)
        before = time.time() * 1000
        job.change_delay(60)
        due = int(redis_client.zscore(f"bull:{queue_name}:delayed", "d") or 0) // 4096
        assert before + 59_000 <= due <= time.time() * 1000 + 61_000
        assert job.delay == 60
        stored = queue.get_job("d")
        assert stored is not None and stored.delay == 60
        job.change_delay(0)  # due now: the next fetch promotes it
        assert queue.get_job_state("d") in ("delayed", "waiting")


def test_change_delay_of_a_grouped_job(redis_url: str, queue_name: str,
                                       redis_client: redis.Redis) -> None:
    with Queue(queue_name, connection=redis_url) as queue:
        job = queue.add("later", {}, job_id="gd", delay=3600, group="yahoo.com")
        job.change_delay(5)
        due = int(redis_client.zscore(f"bull:{queue_name}:gr:delayed", "gd") or 0) // 4096
        assert due <= time.time() * 1000 + 6_000
        assert redis_client.zscore(f"bull:{queue_name}:delayed", "gd") is None


def test_wrong_states_missing_jobs_and_bad_values_are_refused(redis_url: str,
                                                              queue_name: str,
                                                              redis_client: redis.Redis
                                                              ) -> None:
    with Queue(queue_name, connection=redis_url) as queue:
        waiting = queue.add("w", {}, job_id="w")
        with pytest.raises(JobStateError, match="change_delay"):
            waiting.change_delay(10)
        for bad in (-1, 2**21, 1.5, True, "1"):
            with pytest.raises(InvalidJobOptionsError, match="priority"):
                waiting.change_priority(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidJobOptionsError):
            waiting.change_delay(-1)
        queue.remove("w")
        with pytest.raises(JobNotFoundError):
            waiting.change_priority(1)
        done = queue.add("x", {}, job_id="done")
        redis_client.lrem(f"bull:{queue_name}:wait", 0, "done")
        redis_client.zadd(f"bull:{queue_name}:completed", {"done": 1})
        before = redis_client.hgetall(f"bull:{queue_name}:done")
        with pytest.raises(JobStateError):
            done.change_priority(1)
        assert redis_client.hgetall(f"bull:{queue_name}:done") == before


def test_a_damaged_waiting_job_is_failed_alone(redis_url: str, queue_name: str,
                                               redis_client: redis.Redis) -> None:
    with Queue(queue_name, connection=redis_url) as queue:
        job = queue.add("x", {}, job_id="bad")
        queue.add("x", {}, job_id="good")
        redis_client.hset(f"bull:{queue_name}:bad", "timestamp", "yesterday")
        with pytest.raises(JobStateError, match="damaged"):
            job.change_priority(1)
        assert queue.get_job_state("bad") == "failed"
        assert queue.get_job_state("good") == "waiting"


async def test_async_jobs_change_too(redis_url: str, queue_name: str) -> None:
    async with AsyncQueue(queue_name, connection=redis_url) as queue:
        job = await queue.add("x", {}, job_id="a", delay=100)
        await job.change_priority(7)
        await job.change_delay(200)
        fresh: Any = await queue.get_job("a")
        assert fresh.priority == 7 and fresh.delay == 200
