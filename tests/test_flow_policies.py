"""Finishing flows: workers move a parent on when its children finish, by each
child's failure policy, in the script that finishes the child."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from pyqueue import AsyncFlowProducer, AsyncQueue
from tests._flow_helpers import (
    counts_are,
    echo,
    finished,
    run_policy,
    state_is,
    tree,
    workers,
)
from tests._worker_helpers import wait_for


async def test_parent_runs_after_children_with_their_values(redis_url: str, queue_name: str
                                                            ) -> None:
    async with AsyncFlowProducer(connection=redis_url) as flows:
        node = await flows.add(tree(queue_name))
    seen: dict[str, Any] = {}

    async def parent(job: Any) -> str:
        seen.update(await job.get_children_values())
        return "sent"

    async with AsyncQueue(f"{queue_name}p", connection=redis_url) as pq, \
            workers(redis_url, {f"{queue_name}c": echo, f"{queue_name}p": parent}):
        job = await pq.get_job(node.job.id)
        assert job is not None
        assert await job.wait_until_finished(timeout=10) == "sent"
        deps = await job.get_dependencies()
    c = f"bull:{queue_name}c"
    assert seen == {f"{c}:1": {"v": 2}, f"{c}:2": {"v": 1}}
    assert deps == {"processed": seen, "unprocessed": [], "failed": {}, "ignored": {}}


async def test_fail_parent_on_failure(redis_url: str, queue_name: str) -> None:
    pq, parent = await run_policy(redis_url, queue_name, True, fail_parent_on_failure=True)
    assert await parent.get_state() == "failed"
    assert parent.failed_reason == f"child bull:{queue_name}c:2 failed"
    assert (await parent.get_dependencies())["failed"] == {
        f"bull:{queue_name}c:2": "card declined"}
    await pq.close()


async def test_continue_parent_on_failure(redis_url: str, queue_name: str) -> None:
    pq, parent = await run_policy(redis_url, queue_name, True, continue_parent_on_failure=True)
    assert await parent.get_state() == "completed"
    assert parent.return_value["ignored"] == {f"bull:{queue_name}c:2": "card declined"}
    await pq.close()


async def test_ignore_dependency_on_failure(redis_url: str, queue_name: str) -> None:
    pq, parent = await run_policy(redis_url, queue_name, True, ignore_dependency_on_failure=True)
    assert await parent.get_state() == "completed"
    deps = parent.return_value
    assert deps["ignored"] == {f"bull:{queue_name}c:2": "card declined"}
    assert deps["processed"] == {f"bull:{queue_name}c:1": "b"}
    await pq.close()


async def test_remove_dependency_on_failure(redis_url: str, queue_name: str) -> None:
    pq, parent = await run_policy(redis_url, queue_name, True, remove_dependency_on_failure=True)
    assert await parent.get_state() == "completed"
    assert parent.return_value["ignored"] == {}
    assert parent.return_value["processed"] == {f"bull:{queue_name}c:1": "b"}
    await pq.close()


async def test_no_policy_leaves_the_parent_waiting(redis_url: str, queue_name: str) -> None:
    pq, parent = await run_policy(redis_url, queue_name, False)
    assert await parent.get_state() == "waiting-children"
    assert await parent.get_dependencies_count() == {"processed": 1, "unprocessed": 1,
                                                     "ignored": 0, "failed": 0}
    await pq.close()


async def test_failure_cascades_up_a_deep_tree(redis_url: str, queue_name: str) -> None:
    """Depth 10, each level with fail_parent_on_failure: the leaf's failure fails the root."""
    node: dict[str, Any] = {"name": "leaf", "queue_name": queue_name, "data": {"fail": True},
                            "opts": {"fail_parent_on_failure": True}}
    for level in range(9):
        opts = {"fail_parent_on_failure": True} if level < 8 else {}
        node = {"name": f"l{level}", "queue_name": queue_name, "data": {}, "opts": opts,
                "children": [node]}
    async with AsyncFlowProducer(connection=redis_url) as flows:
        root = await flows.add(node)

    async def work(job: Any) -> str:
        if job.data.get("fail"):
            raise RuntimeError("boom")
        return "ok"

    async with AsyncQueue(queue_name, connection=redis_url) as q, \
            workers(redis_url, {queue_name: work}):
        await wait_for(lambda: finished(q, root.job.id), what="root failed")
        assert await q.get_job_counts("failed", "completed") == {"failed": 10, "completed": 0}


async def test_worker_refuses_to_complete_a_job_with_pending_children(
        redis_url: str, queue_name: str) -> None:
    """A processor that adds a child and returns: the attempt fails (BullMQ's rule)."""
    async def work(job: Any) -> str:
        if job.name == "parent":
            async with AsyncQueue(f"{queue_name}c", connection=redis_url) as cq:
                await cq.add("child", {}, parent={"id": job.id, "queue": queue_name})
        return "done"

    async with AsyncQueue(queue_name, connection=redis_url) as q, \
            workers(redis_url, {queue_name: work}):
        job = await q.add("parent", {})
        await wait_for(lambda: finished(q, job.id), what="parent failed")
        stored = await q.get_job(job.id)
        assert stored is not None
        assert "children that have not finished" in (stored.failed_reason or "")


@pytest.mark.parametrize("parent_opts, state", [
    ({"delay": 60}, "delayed"),
    ({"priority": 5}, "prioritized"),
    ({}, "waiting"),
])
async def test_released_parent_goes_where_its_options_say(redis_url: str, queue_name: str,
                                                          parent_opts: dict[str, Any],
                                                          state: str) -> None:
    """A parent's delay starts when its children are done; its priority applies
    then. A child removed on completion leaves its result with the parent."""
    spec = {"name": "parent", "queue_name": f"{queue_name}p", "data": {}, "opts": parent_opts,
            "children": [{"name": "c", "queue_name": f"{queue_name}c", "data": {"v": 5},
                          "opts": {"remove_on_complete": True}}]}
    async with AsyncFlowProducer(connection=redis_url) as flows:
        node = await flows.add(spec)
        async with AsyncQueue(f"{queue_name}p", connection=redis_url) as pq, \
                workers(redis_url, {f"{queue_name}c": echo}):
            await wait_for(lambda: state_is(pq, node.job.id, state), what=state)
        assert await node.job.get_children_values() == {f"bull:{queue_name}c:1": {"v": 5}}
        found = await flows.get_flow(node.job.id, f"{queue_name}p")
        assert found is not None and found.children == []  # the child itself is gone


async def test_ignored_children_failures(redis_url: str, queue_name: str) -> None:
    pq, parent = await run_policy(redis_url, queue_name, True, ignore_dependency_on_failure=True)
    assert await parent.get_ignored_children_failures() == {
        f"bull:{queue_name}c:2": "card declined"}
    await pq.close()


async def test_a_damaged_parent_does_not_stop_its_child_finishing(
        redis_url: str, queue_name: str, redis_client: redis.Redis) -> None:
    """The parent's :dependencies replaced by a string: the child still completes
    (its own move stands); the parent is left as it was."""
    async with AsyncFlowProducer(connection=redis_url) as flows:
        node = await flows.add(tree(queue_name))
    deps = f"bull:{queue_name}p:{node.job.id}:dependencies"
    redis_client.delete(deps)
    redis_client.set(deps, "damaged")
    async with AsyncQueue(f"{queue_name}c", connection=redis_url) as cq, \
            workers(redis_url, {f"{queue_name}c": echo}):
        await wait_for(lambda: counts_are(cq, completed=2), what="children completed")
    assert redis_client.get(deps) == b"damaged"
    assert redis_client.zscore(f"bull:{queue_name}p:waiting-children", node.job.id) is not None
