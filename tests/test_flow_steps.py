"""Step jobs (move_to_waiting_children + WaitingChildrenError) and durable steps
(job.step, job.sleep): a processor that runs as several steps, holding no worker
slot while it waits."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from pyqueue import AsyncQueue, JobStateError, Queue, WaitingChildrenError, Worker
from tests._worker_helpers import wait_for


async def finished(q: AsyncQueue, job_id: str) -> bool:
    return await q.get_job_state(job_id) in ("completed", "failed")


async def test_step_job_waits_for_the_children_it_added(redis_url: str, queue_name: str,
                                                        redis_client: redis.Redis) -> None:
    runs: list[str] = []
    states: list[str] = []

    async def work(job: Any) -> Any:
        if job.name == "child":
            return job.data["n"] * 10
        runs.append("run")

        async def add_children() -> list[str]:
            async with AsyncQueue(queue_name, connection=redis_url) as q:
                return [(await q.add("child", {"n": n},
                                     parent={"id": job.id, "queue": queue_name})).id
                        for n in (1, 2)]

        await job.step("add-children", add_children)
        if await job.move_to_waiting_children():
            states.append(await job.get_state())
            raise WaitingChildrenError()
        return sum((await job.get_children_values()).values())

    async with AsyncQueue(queue_name, connection=redis_url) as q:
        parent = await q.add("parent", {})
        w = Worker(queue_name, work, connection=redis_url, autorun=False, concurrency=1,
                   shutdown_grace=2, drain_delay=0.05)
        await w.start()
        try:
            # concurrency=1: the children can run only because the waiting parent
            # holds no slot.
            assert await (await q.get_job(parent.id)).wait_until_finished(timeout=10) == 30
        finally:
            await w.close(force=True)
        assert states == ["waiting-children"]
        assert runs == ["run", "run"]
        assert await q.get_job_counts("completed") == {"completed": 3}


async def test_move_to_waiting_children_without_children_returns_false(
        redis_url: str, queue_name: str) -> None:
    answers: list[bool] = []

    async def work(job: Any) -> str:
        answers.append(await job.move_to_waiting_children())
        return "ok"

    async with AsyncQueue(queue_name, connection=redis_url) as q:
        job = await q.add("solo", {})
        async with Worker(queue_name, work, connection=redis_url, shutdown_grace=2):
            assert await (await q.get_job(job.id)).wait_until_finished(timeout=10) == "ok"
        assert answers == [False]
        with pytest.raises(JobStateError, match="inside the job's processor"):
            await job.move_to_waiting_children()


async def test_durable_step_runs_once_across_retries(redis_url: str, queue_name: str) -> None:
    calls: list[str] = []

    async def charge(order: int) -> dict[str, Any]:
        calls.append("charge")
        return {"charge_id": f"ch_{order}"}

    async def work(job: Any) -> Any:
        charged = await job.step("charge", charge, job.data["order"])
        if job.attempts_made == 0:
            raise RuntimeError("mail server down")  # the retry must not charge again
        return charged

    async with AsyncQueue(queue_name, connection=redis_url) as q:
        job = await q.add("invoice", {"order": 7}, attempts=2)
        async with Worker(queue_name, work, connection=redis_url, shutdown_grace=2):
            assert await (await q.get_job(job.id)).wait_until_finished(timeout=10) == {
                "charge_id": "ch_7"}
        assert calls == ["charge"]
        stored = await q.get_job(job.id)
        assert stored is not None and stored.fields["pqstep:charge"] == '{"charge_id":"ch_7"}'


async def test_durable_sleep_suspends_the_job_as_delayed(redis_url: str, queue_name: str) -> None:
    calls: list[str] = []
    seen_delayed: list[bool] = []

    def first() -> int:
        calls.append("first")
        return 1

    async def work(job: Any) -> Any:
        a = await job.step("first", first)
        await job.sleep("pause", 0.3)
        seen_delayed.append(True)
        b = await job.step("second", lambda: 2)
        return a + b

    async with AsyncQueue(queue_name, connection=redis_url) as q:
        job = await q.add("steps", {})
        async with Worker(queue_name, work, connection=redis_url, shutdown_grace=2,
                          drain_delay=0.05):
            await wait_for(lambda: _state_is(q, job.id, "delayed"), what="sleeping")
            assert await (await q.get_job(job.id)).wait_until_finished(timeout=10) == 3
        assert calls == ["first"]
        assert seen_delayed == [True]


async def _state_is(q: AsyncQueue, job_id: str, state: str) -> bool:
    return await q.get_job_state(job_id) == state


def test_sync_processor_steps(redis_url: str, queue_name: str) -> None:
    from pyqueue.testing import run_until_idle

    calls: list[int] = []

    def work(job: Any) -> Any:
        return job.step("only", lambda: calls.append(1) or "done")

    with Queue(queue_name, connection=redis_url) as q:
        q.add("x", {})
        jobs = run_until_idle(queue_name, work, connection=redis_url)
    assert [j.return_value for j in jobs] == ["done"]
    assert calls == [1]


async def test_bad_step_names_are_refused(redis_url: str, queue_name: str) -> None:
    errors: list[BaseException] = []

    async def work(job: Any) -> None:
        try:
            await job.step("", lambda: 1)
        except ValueError as exc:
            errors.append(exc)

    async with AsyncQueue(queue_name, connection=redis_url) as q:
        job = await q.add("x", {})
        async with Worker(queue_name, work, connection=redis_url, shutdown_grace=2):
            await wait_for(lambda: finished(q, job.id), what="done")
    assert len(errors) == 1 and "non-empty" in str(errors[0])
