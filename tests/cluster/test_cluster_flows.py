"""Flows on a real local Redis Cluster: a tree across queues whose hash tag is
in the prefix (one slot) runs as on one server; a tree over several slots is
refused before any write."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from _worker_helpers import wait_for

from pyqueue import AsyncFlowProducer, AsyncQueue, FlowProducer, Worker
from pyqueue.errors import ConfigurationError


async def test_flow_across_queues_on_one_slot(cluster_url: str) -> None:
    prefix = f"{{f{uuid4().hex[:8]}}}"
    results: dict[str, Any] = {}

    async def pay(job: Any) -> dict[str, int]:
        return {"paid": job.data["order"]}

    async def invoice(job: Any) -> str:
        results["children"] = await job.get_children_values()
        return "sent"

    async with AsyncFlowProducer(connection=cluster_url, prefix=prefix) as flows:
        node = await flows.add({
            "name": "invoice", "queue_name": "email", "data": {"order": 7},
            "children": [{"name": "charge", "queue_name": "payments", "data": {"order": 7}}],
        })
    workers = [Worker("payments", pay, connection=cluster_url, prefix=prefix),
               Worker("email", invoice, connection=cluster_url, prefix=prefix)]
    queue = AsyncQueue("email", connection=cluster_url, prefix=prefix)
    try:
        async def parent_done() -> bool:
            return await queue.get_job_state(node.job.id) == "completed"
        await wait_for(parent_done, timeout=15, what="the parent completed after its child")
        assert list(results["children"].values()) == [{"paid": 7}]
    finally:
        for worker in workers:
            await worker.close()
        await queue.close()


def test_flow_over_several_slots_refused(cluster_url: str) -> None:
    with FlowProducer(connection=cluster_url) as flows, pytest.raises(ConfigurationError,
                                                                      match="one hash slot"):
        flows.add({"name": "p", "queue_name": "{a}", "children": [
            {"name": "c", "queue_name": "{b}"}]})
    with FlowProducer(connection=cluster_url) as flows, pytest.raises(ConfigurationError,
                                                                      match="hash tag"):
        flows.add({"name": "p", "queue_name": "plain"})
