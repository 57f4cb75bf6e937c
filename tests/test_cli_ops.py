"""``pyqueue workers``, ``pyqueue schedulers`` and ``pyqueue info --watch`` against a real
Redis (in-process ``main`` with captured output)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis
from _worker_helpers import wait_for

from pyqueue import AsyncQueue, Queue, Worker
from pyqueue._keys import QueueKeys
from pyqueue.cli import main


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


async def test_workers_lists_heartbeats(redis_url: str, queue_name: str,
                                        redis_client: redis.Redis,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        await q.add("x", {})
        worker = Worker(queue_name, lambda job: 1, connection=redis_url, concurrency=4,
                        log_jobs=False, autorun=False)
        await worker.start()
        try:
            await wait_for(lambda: worker.jobs_processed >= 1, what="a job")
            workers_key = QueueKeys("bull", queue_name).workers
            await wait_for(lambda: redis_client.zcard(workers_key), what="a heartbeat")
            # The command runs its own sync client: not on this loop's thread.
            code = await asyncio.to_thread(run, ["workers", queue_name, "--json",
                                                 "--redis", redis_url])
            rows = json.loads(capsys.readouterr().out)
            assert code == 0
            (row,) = rows
            assert row["worker_id"] == worker.id and row["concurrency"] == 4
            assert row["pid"] > 0 and row["host"] and row["uptime"] != "?"
            code = await asyncio.to_thread(run, ["workers", queue_name, "--redis", redis_url])
            text = capsys.readouterr().out
            assert code == 0 and "concurrency" in text and worker.id in text
        finally:
            await worker.close()
    assert run(["workers", queue_name, "--redis", redis_url]) == 0
    assert "no pyqueue workers" in capsys.readouterr().out
    assert run(["workers", queue_name + "-nope", "--redis", redis_url]) == 2


def test_schedulers_list_and_remove(redis_url: str, queue_name: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        q.upsert_job_scheduler("tick", every=30, template={"name": "tick"})
        q.upsert_job_scheduler("nightly", pattern="0 3 * * *", tz="UTC")
    assert run(["schedulers", queue_name, "--redis", redis_url]) == 0
    text = capsys.readouterr().out
    assert "tick" in text and "30s" in text and "0 3 * * *" in text and "UTC" in text
    assert run(["schedulers", queue_name, "--json", "--redis", redis_url]) == 0
    assert {s["id"] for s in json.loads(capsys.readouterr().out)} == {"tick", "nightly"}
    assert run(["schedulers", queue_name, "--remove", "tick", "--redis", redis_url]) == 0
    assert "removed" in capsys.readouterr().out
    assert run(["schedulers", queue_name, "--remove", "tick", "--redis", redis_url]) == 2
    with Queue(queue_name, connection=redis_url) as q:
        assert [s["id"] for s in q.get_job_schedulers()] == ["nightly"]


def test_info_watch_refreshes_counts_and_rates(redis_url: str, queue_name: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        q.add("a", {})
        q.add("b", {}, delay=60)
    assert run(["info", queue_name, "--watch", "--interval", "0.05", "--count", "2",
                "--redis", redis_url]) == 0
    blocks = capsys.readouterr().out.split("(Ctrl-C to stop)")
    assert len(blocks) == 3  # two refreshes
    header, row = blocks[2].strip().splitlines()[:2]
    cells: dict[str, Any] = dict(zip(header.split(), row.split(), strict=False))
    assert cells["queue"] == queue_name and cells["waiting"] == "1" and cells["delayed"] == "1"
    assert cells["rate"] == "0.0/s"
    assert run(["info", "--watch", "--interval", "0", "--redis", redis_url]) == 2
