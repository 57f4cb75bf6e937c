"""``pyqueue.testing``'s time control (``TimeTravel``, ``advance``) and assertions
(``assert_enqueued``, ``assert_not_enqueued``), on the real worker and scripts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pyqueue import AsyncQueue, Queue
from pyqueue.testing import (
    TimeTravel,
    advance,
    assert_enqueued,
    assert_not_enqueued,
    run_until_idle,
    run_until_idle_async,
)


def test_advance_promotes_what_is_due_by_then_and_adds_up(redis_url: str,
                                                          queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        soon = q.add("soon", None, delay=30)
        later = q.add("later", None, delay=timedelta(minutes=2))
        travel = TimeTravel(q)
        assert travel.advance(10) == []
        assert travel.advance(25) == [soon.id]           # 35 s travelled
        assert q.get_job_state(soon.id) == "waiting"
        assert q.get_job_state(later.id) == "delayed"
        assert travel.advance(timedelta(seconds=90)) == [later.id]  # 125 s
        assert advance(q, 3600) == []


def test_a_retry_backoff_runs_without_waiting(redis_url: str, queue_name: str) -> None:
    calls: list[int] = []

    def flaky(job: Any) -> str:
        calls.append(job.attempts_made)
        if len(calls) < 3:
            raise RuntimeError("try again")
        return "done"

    with Queue(queue_name, connection=redis_url) as q:
        job = q.add("flaky", {}, attempts=3, backoff={"type": "exponential", "delay": 600})
        assert run_until_idle(queue_name, flaky, connection=redis_url) == []  # retry delayed
        assert_enqueued(q, "flaky", states=["delayed"], count=1)
        assert advance(q, 600) == [job.id]               # the first backoff: 600 s
        assert run_until_idle(queue_name, flaky, connection=redis_url) == []
        assert advance(q, 1200) == [job.id]              # the second: 1200 s
        (finished,) = run_until_idle(queue_name, flaky, connection=redis_url)
        assert finished.return_value == "done" and len(calls) == 3


def test_a_scheduler_runs_each_time_the_clock_is_moved(redis_url: str,
                                                       queue_name: str) -> None:
    runs: list[str] = []
    with Queue(queue_name, connection=redis_url) as q:
        q.upsert_job_scheduler("hourly", every=3600, template={"name": "report", "data": {}})
        travel = TimeTravel(q)
        run_until_idle(queue_name, lambda job: runs.append(job.name), connection=redis_url)
        for _ in range(3):  # every run schedules the next one an hour later
            assert_enqueued(q, "report", states=["delayed"], count=1)
            assert travel.advance(3599) == []
            assert len(travel.advance(1)) == 1
            run_until_idle(queue_name, lambda job: runs.append(job.name), connection=redis_url)
        assert runs == ["report"] * 4
        assert_enqueued(q, "report", states=["delayed"], count=1)  # the next run


def test_assert_enqueued_matches_and_explains(redis_url: str, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        q.add("welcome", {"to": "a@example.com"})
        q.add("welcome", {"to": "b@example.com"}, delay=60)
        q.add("receipt", {"order": 7}, priority=3)
        (job,) = assert_enqueued(q, "welcome", {"to": "a@example.com"})
        assert job.data == {"to": "a@example.com"}
        assert len(assert_enqueued(q, "welcome", count=2)) == 2
        assert_enqueued(q, where=lambda j: j.data.get("order") == 7)
        assert_not_enqueued(q, "welcome", {"to": "c@example.com"})
        with pytest.raises(AssertionError) as info:
            assert_enqueued(q, "welcome", {"to": "c@example.com"})
        message = str(info.value)
        assert "name 'welcome'" in message and "'receipt'" in message and "b@example.com" in message
        with pytest.raises(AssertionError, match="expected 3 job"):
            assert_enqueued(q, "welcome", count=3)
        with pytest.raises(AssertionError, match="expected no job"):
            assert_not_enqueued(q, "receipt")
        run_until_idle(queue_name, lambda job: None, connection=redis_url)
        assert_not_enqueued(q, states=["waiting", "prioritized"])
        assert_enqueued(q, "receipt", states=["completed"])
        assert_enqueued(q, "welcome", {"to": "b@example.com"}, count=1)  # still delayed


async def test_the_helpers_with_an_async_queue(redis_url: str, queue_name: str) -> None:
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        await q.add("later", {"n": 1}, delay=120)
        await assert_not_enqueued(q, states=["waiting"])
        assert len(await TimeTravel(q).advance(120)) == 1
        await assert_enqueued(q, "later", {"n": 1}, states=["waiting"])
        await run_until_idle_async(queue_name, lambda job: None, connection=redis_url)
        await assert_not_enqueued(q)


def test_time_travel_refuses_what_is_not_a_queue() -> None:
    with pytest.raises(TypeError, match="Queue"):
        TimeTravel("email")  # type: ignore[type-var]


def test_the_plugin_fixture(pyqueue_queue: Queue, pyqueue_time_travel: TimeTravel[Queue]
                            ) -> None:
    job = pyqueue_queue.add("x", None, delay=5)
    assert pyqueue_time_travel.advance(5) == [job.id]
    assert_enqueued(pyqueue_queue, "x", states=["waiting"])


def test_advance_promotes_delayed_grouped_jobs_too(redis_url: str, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        job = q.add("per-domain", {"to": "a@example.com"}, group="example.com", delay=90)
        assert q.get_job_state(job.id) == "delayed"
        assert advance(q, 90) == [job.id]
        (done,) = run_until_idle(queue_name, lambda j: j.data["to"], connection=redis_url)
        assert done.return_value == "a@example.com"
