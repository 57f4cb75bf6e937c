"""BullMQ metrics shared with the real ``bullmq@6.7.0``: a Node worker and a pyqueue
worker with metrics on one queue both count, Node's ``getMetrics`` reads what
pyqueue wrote (counts and per-minute data points), and so does Bull Board's
metrics API (``board_side.mjs``, @bull-board 9.10.1)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from pyqueue import AsyncQueue, Job, Worker
from pyqueue._keys import QueueKeys

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
MINUTE = 60_000
T0 = 1_800_000_000_000 // MINUTE * MINUTE


def work(job: Job) -> Any:
    if "fail" in job.data:
        raise ValueError(job.data["fail"])
    return {"ok": True}


async def run_pyqueue(worker: Worker, queue: AsyncQueue, *datas: dict[str, Any],
                      at_ms: int | None = None) -> None:
    worker.clock.fixed_ms = at_ms
    target = worker.jobs_processed + len(datas)
    for data in datas:
        await queue.add("m", data)
    deadline = time.monotonic() + 20
    while worker.jobs_processed < target:
        if time.monotonic() > deadline:
            pytest.fail(f"pyqueue worker finished {worker.jobs_processed} of {target} jobs")
        await asyncio.sleep(0.02)


async def test_node_reads_pyqueue_metrics_and_both_count(bull: Any, redis_url: str,
                                                         queue_name: str,
                                                         redis_client: redis.Redis) -> None:
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        worker = Worker(queue_name, work, connection=redis_url, autorun=False, log_jobs=False,
                        metrics={"max_data_points": 10})
        await worker.start()
        try:
            await run_pyqueue(worker, q, {}, {}, {}, at_ms=T0 + 1_000)
            await run_pyqueue(worker, q, {}, {}, {"fail": "x"}, at_ms=T0 + MINUTE + 1)
        finally:
            await worker.close()
        node = (await bull.aio("metrics", queue=queue_name, type="completed"))["metrics"]
        assert node == {"meta": {"count": 5, "prevTS": T0 + MINUTE + 1, "prevCount": 3},
                        "data": [3], "count": 1}
        ours = await q.get_metrics("completed")
        assert ours == {"meta": {"count": 5, "prev_ts": T0 + MINUTE + 1, "prev_count": 3},
                        "data": [3], "count": 1}
        node_failed = (await bull.aio("metrics", queue=queue_name, type="failed"))["metrics"]
        assert node_failed["meta"]["count"] == 1 == (await q.get_metrics("failed"))["meta"][
            "count"]

    # Both libraries' workers on one queue (real clocks): every final outcome counts.
    mixed = queue_name + "-mixed"
    async with AsyncQueue(mixed, connection=redis_url) as q:
        for data in ({}, {}, {"fail": "n"}):
            await q.add("m", data)
        result = await bull.aio("work", queue=mixed, count=3, metricsPoints=10, timeoutMs=20000)
        assert result["timedOut"] is False
        keys = QueueKeys("bull", mixed)
        node_hash = redis_client.hgetall(keys.metrics("completed"))
        assert set(node_hash) == {b"count", b"prevTS", b"prevCount"}
        assert node_hash[b"count"] == b"2"
        worker = Worker(mixed, work, connection=redis_url, autorun=False, log_jobs=False,
                        metrics={"max_data_points": 10})
        await worker.start()
        try:
            await run_pyqueue(worker, q, {}, {"fail": "p"}, {})
        finally:
            await worker.close()
        assert set(redis_client.hgetall(keys.metrics("completed"))) == set(node_hash)
        node = (await bull.aio("metrics", queue=mixed, type="completed"))["metrics"]
        assert node["meta"]["count"] == 4 == (await q.get_metrics("completed"))["meta"]["count"]
        node = (await bull.aio("metrics", queue=mixed, type="failed"))["metrics"]
        assert node["meta"]["count"] == 2 == (await q.get_metrics("failed"))["meta"]["count"]
        assert node["data"] == (await q.get_metrics("failed"))["data"]


async def test_bull_board_metrics_api_shows_pyqueue_metrics(node_harness: str, redis_url: str,
                                                            queue_name: str) -> None:
    """Bull Board's ``/api/queues/:q/metrics`` (what its chart draws) reads pyqueue's."""
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        worker = Worker(queue_name, work, connection=redis_url, autorun=False, log_jobs=False,
                        metrics={"max_data_points": 10})
        await worker.start()
        try:
            await run_pyqueue(worker, q, {}, {}, at_ms=T0)
            await run_pyqueue(worker, q, {}, {"fail": "x"}, at_ms=T0 + 2 * MINUTE)
        finally:
            await worker.close()
    args = json.dumps({"redis": redis_url, "queue": queue_name,
                       "path": f"/api/queues/{queue_name}/metrics"})
    proc = await asyncio.to_thread(
        subprocess.run, [node_harness, str(HERE / "board_side.mjs"), args],
        capture_output=True, text=True, timeout=60, cwd=HERE)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    reply = json.loads(proc.stdout.strip().splitlines()[-1])
    assert reply["status"] == 200
    completed = reply["body"]["completed"]
    assert completed["meta"] == {"count": 3, "prevTS": T0 + 2 * MINUTE, "prevCount": 2}
    assert completed["data"] == [0, 2] and completed["count"] == 2
    assert reply["body"]["failed"]["meta"]["count"] == 1
