"""BullMQ-format metrics (``Worker(metrics=...)``, ``queue.get_metrics``) against a real
Redis: per-minute data points driven by a pinned worker clock, retention of data
points, failures, validation, and nothing written when metrics are off."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from _worker_helpers import wait_for

from pyqueue import AsyncQueue, InvalidJobOptionsError, Queue, Worker
from pyqueue import _scripts as S
from pyqueue._keys import QueueKeys

MINUTE = 60_000
T0 = 1_800_000_000_000 // MINUTE * MINUTE  # a minute boundary


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> Any:
    q = AsyncQueue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        await q.close()


async def process(worker: Worker, queue: AsyncQueue, at_ms: int, *datas: Any) -> None:
    """Add jobs and wait until the worker (its clock pinned at ``at_ms``) finished them."""
    worker.clock.fixed_ms = at_ms
    before = worker.jobs_processed
    for data in datas:
        await queue.add("m", data)
    await wait_for(lambda: worker.jobs_processed >= before + len(datas),
                   what=f"{len(datas)} jobs at {at_ms}")


def ok(job: Any) -> Any:
    if job.data.get("fail"):
        raise ValueError("boom")
    return 1


async def test_per_minute_points_newest_first_trimmed(queue: AsyncQueue, redis_url: str,
                                                      queue_name: str,
                                                      redis_client: redis.Redis) -> None:
    worker = Worker(queue_name, ok, connection=redis_url, metrics={"max_data_points": 3},
                    log_jobs=False, autorun=False)
    await worker.start()
    try:
        await process(worker, queue, T0 + 5_000, {}, {}, {})
        first = await queue.get_metrics("completed")
        # The first finish starts the series; the minute is counted when it ends.
        assert first == {"meta": {"count": 3, "prev_ts": T0 + 5_000, "prev_count": 0},
                         "data": [], "count": 0}
        await process(worker, queue, T0 + MINUTE + 1, {}, {})
        second = await queue.get_metrics("completed")
        assert second["meta"] == {"count": 5, "prev_ts": T0 + MINUTE + 1, "prev_count": 3}
        assert second["data"] == [3] and second["count"] == 1
        # Three minutes later: the closed minute (2 jobs), then 0 per empty minute.
        await process(worker, queue, T0 + 4 * MINUTE, {})
        third = await queue.get_metrics("completed")
        assert third["meta"]["count"] == 6
        assert third["data"] == [0, 0, 2]  # trimmed to 3 points: the oldest (3) is gone
        assert await queue.get_metrics("completed", 0, 0) == {**third, "data": [0]}
        await process(worker, queue, T0 + 4 * MINUTE, {"fail": True})
        failed = await queue.get_metrics("failed")
        assert failed["meta"] == {"count": 1, "prev_ts": T0 + 4 * MINUTE, "prev_count": 0}
        assert (await queue.get_metrics("completed"))["meta"]["count"] == 6
    finally:
        await worker.close()
    keys = QueueKeys("bull", queue_name)
    raw = redis_client.hgetall(keys.metrics("completed"))
    assert raw == {b"count": b"6", b"prevTS": str(T0 + 4 * MINUTE).encode(),
                   b"prevCount": b"5"}
    assert redis_client.lrange(keys.metrics_data("completed"), 0, -1) == [b"0", b"0", b"2"]


async def test_a_long_gap_pushes_at_most_max_points(queue: AsyncQueue, redis_url: str,
                                                   queue_name: str,
                                                   redis_client: redis.Redis) -> None:
    worker = Worker(queue_name, ok, connection=redis_url, metrics={"max_data_points": 5},
                    log_jobs=False, autorun=False)
    await worker.start()
    try:
        await process(worker, queue, T0, {}, {})
        await process(worker, queue, T0 + 10_000 * MINUTE, {})
    finally:
        await worker.close()
    metrics = await queue.get_metrics("completed")
    # 10000 minutes passed; only max_data_points of them are kept, the closed minute oldest.
    assert metrics["data"] == [0, 0, 0, 0, 2] and metrics["count"] == 5
    assert metrics["meta"]["prev_count"] == 2 and metrics["meta"]["count"] == 3


async def test_retries_are_not_counted_until_the_final_failure(queue: AsyncQueue,
                                                              redis_url: str,
                                                              queue_name: str) -> None:
    worker = Worker(queue_name, ok, connection=redis_url, metrics={}, log_jobs=False,
                    autorun=False)
    await worker.start()
    try:
        job = await queue.add("m", {"fail": True}, attempts=3)
        await wait_for(lambda: worker.jobs_processed >= 1, what="final failure")
        assert (await queue.get_job_state(job.id)) == "failed"
    finally:
        await worker.close()
    assert (await queue.get_metrics("failed"))["meta"]["count"] == 1
    assert (await queue.get_metrics("completed"))["meta"]["count"] == 0


async def test_no_metrics_no_keys_and_no_param(queue: AsyncQueue, redis_url: str,
                                               queue_name: str,
                                               redis_client: redis.Redis) -> None:
    worker = Worker(queue_name, ok, connection=redis_url, log_jobs=False, autorun=False)
    await worker.start()
    try:
        await process(worker, queue, T0, {}, {"fail": True})
    finally:
        await worker.close()
    assert redis_client.keys(f"bull:{queue_name}:metrics*") == []
    assert await queue.get_metrics("completed") == {
        "meta": {"count": 0, "prev_ts": 0, "prev_count": 0}, "data": [], "count": 0}
    keys = QueueKeys("bull", queue_name)
    item = S.finish_item(id="1", lock_token="t", target="completed", value="1",
                         keep_count=-1, keep_age_ms=0)
    plain = S.move_to_finished(keys, 1, items=[item], fetch=None, me=None)
    assert b"mdp" not in plain.tail[1]
    counted = S.move_to_finished(keys, 1, items=[item], fetch=None, me=None, metrics_points=9)
    assert b"mdp" in counted.tail[1]


@pytest.mark.parametrize("metrics", [{"max_data_points": 0}, {"max_data_points": 1.5},
                                     {"points": 3}, [3], {"max_data_points": True}])
def test_bad_metrics_option(metrics: Any, queue_name: str) -> None:
    with pytest.raises(InvalidJobOptionsError, match="metrics"):
        Worker(queue_name, ok, metrics=metrics, autorun=False)


def test_get_metrics_rejects_bad_arguments(redis_url: str, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        with pytest.raises(InvalidJobOptionsError, match="'completed' or 'failed'"):
            q.get_metrics("active")
        with pytest.raises(InvalidJobOptionsError, match="start"):
            q.get_metrics("completed", "0")  # type: ignore[arg-type]
        assert q.get_metrics("failed")["count"] == 0
