"""Testing a flow with ``pyqueue.testing`` (docs/testing.md, "Testing a flow"): children
then parent with ``run_until_idle``, a delayed child made due by ``TimeTravel``, and a
child failing for good with ``fail_parent_on_failure`` (the parent fails unrun)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pyqueue import AsyncFlowProducer, AsyncQueue, FlowProducer, Queue
from pyqueue.testing import TimeTravel, run_until_idle, run_until_idle_async


def charge(job: Any) -> dict[str, int]:
    if job.data["cents"] < 0:
        raise ValueError("negative amount")
    return {"charged": job.data["cents"]}


def ship(job: Any) -> dict[str, int]:
    charged = sum(v["charged"] for v in job.get_children_values().values())
    return {"shipped": job.data["order"], "charged": charged}


def test_children_then_parent_with_time_travel(redis_url: str, queue_name: str) -> None:
    orders_q, payments_q = f"{queue_name}-orders", f"{queue_name}-payments"
    with FlowProducer(connection=redis_url) as flows, \
            Queue(orders_q, connection=redis_url) as orders, \
            Queue(payments_q, connection=redis_url) as payments:
        flow = flows.add({"name": "ship", "queue_name": orders_q, "data": {"order": 7},
                          "children": [
                              {"name": "charge", "queue_name": payments_q,
                               "data": {"cents": 500}},
                              {"name": "charge", "queue_name": payments_q,
                               "data": {"cents": 250}, "opts": {"delay": 3600}}]})
        parent = flow.job
        first = run_until_idle(payments_q, charge, connection=redis_url)
        assert [j.id for j in first] == [flow.children[0].job.id]
        assert run_until_idle(orders_q, ship, connection=redis_url) == []
        assert orders.get_job_state(parent.id) == "waiting-children"
        stored = orders.get_job(parent.id)
        assert stored is not None and stored.get_dependencies_count() == {
            "processed": 1, "unprocessed": 1, "ignored": 0, "failed": 0}
        travel = TimeTravel(payments)
        assert travel.advance(timedelta(minutes=59)) == []
        assert travel.advance(timedelta(minutes=1)) == [flow.children[1].job.id]
        run_until_idle(payments_q, charge, connection=redis_url)
        (done,) = run_until_idle(orders_q, ship, connection=redis_url)
        assert done.id == parent.id and done.return_value == {"shipped": 7, "charged": 750}
        assert orders.get_job_state(parent.id) == "completed"


async def test_a_failing_child_fails_its_parent(redis_url: str, queue_name: str) -> None:
    orders_q, payments_q = f"{queue_name}-orders", f"{queue_name}-payments"
    async with AsyncFlowProducer(connection=redis_url) as flows, \
            AsyncQueue(orders_q, connection=redis_url) as orders:
        flow = await flows.add({
            "name": "ship", "queue_name": orders_q, "data": {"order": 8},
            "children": [{"name": "charge", "queue_name": payments_q, "data": {"cents": -1},
                          "opts": {"fail_parent_on_failure": True}}]})
        failed = await run_until_idle_async(payments_q, charge, connection=redis_url,
                                            raise_on_failure=False)
        assert [j.failed_reason for j in failed] == ["negative amount"]
        # The parent moves on with a deferred failure, which the next worker applies:
        # its processor never runs.
        ran: list[Any] = []
        (parent,) = await run_until_idle_async(orders_q, ran.append, connection=redis_url,
                                               raise_on_failure=False)
        assert parent.id == flow.job.id and ran == []
        assert "failed" in (parent.failed_reason or "")
        assert await orders.get_job_state(flow.job.id) == "failed"
