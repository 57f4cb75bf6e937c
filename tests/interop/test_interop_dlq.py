"""Dead letters across libraries: jobs replayed from a pyqueue dead-letter queue
are plain BullMQ jobs, which a BullMQ (Node) worker processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyqueue import Queue, UnrecoverableError
from pyqueue.testing import run_until_idle_async

pytestmark = pytest.mark.interop


def test_a_bullmq_worker_processes_replayed_jobs(bull: Any, redis_url: str,
                                                 queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        q.set_dead_letter_queue(f"{queue_name}-dead")
        q.add("plain", {"k": "plain"}, attempts=2, backoff=0)
        q.add("prio", {"k": "prio"}, priority=2, job_id="prio-1")
        q.add("late", {"k": "late"})

        async def broken(job: Any) -> None:
            raise UnrecoverableError("down")

        asyncio.run(run_until_idle_async(queue_name, broken, connection=redis_url,
                                         raise_on_failure=False, timeout=20))
        assert len(q.get_dead_letters()) == 3
        ids = q.replay_dead_letters(rate=10)  # the last ones are delayed by 0.1, 0.2 s
        assert len(ids) == 3 and "prio-1" not in ids

        result = bull("work", queue=queue_name, count=3, timeoutMs=20000)
        assert result["timedOut"] is False
        processed = {p["name"]: p for p in result["processed"]}
        assert set(processed) == {"plain", "prio", "late"}
        for name, p in processed.items():
            assert p["id"] in ids and p["attemptsMade"] == 1
            assert p["result"] == {"echo": {"k": name}}
        assert [q.get_job_state(i) for i in ids] == ["completed"] * 3
