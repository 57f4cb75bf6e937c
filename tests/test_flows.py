"""Flows: FlowProducer writes the tree atomically in BullMQ's format; workers move a
parent on when its children finish, by each child's failure policy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis

from pyqueue import (
    AsyncFlowProducer,
    AsyncQueue,
    FlowProducer,
    InvalidJobIdError,
    InvalidJobOptionsError,
    JobNotFoundError,
    JobStateError,
    Queue,
    Worker,
)
from tests._worker_helpers import wait_for


def h(r: redis.Redis, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(key).items()}


@pytest.fixture
def flows(redis_url: str) -> Iterator[FlowProducer]:
    with FlowProducer(connection=redis_url) as producer:
        yield producer


@asynccontextmanager
async def workers(redis_url: str, processors: dict[str, Any]) -> AsyncIterator[list[Worker]]:
    """One running worker per queue (``processors``: queue name -> processor)."""
    started = [Worker(q, p, connection=redis_url, autorun=False, shutdown_grace=2,
                      drain_delay=0.05) for q, p in processors.items()]
    for w in started:
        await w.start()
    try:
        yield started
    finally:
        for w in started:
            await w.close(force=True)


def tree(queue_name: str, **child_opts: Any) -> dict[str, Any]:
    """A parent in ``<q>p`` with two children in ``<q>c``: ``b`` (id 1) and ``a``
    (id 2, taking ``child_opts``; a one-slot worker runs it last)."""
    return {"name": "parent", "queue_name": f"{queue_name}p", "data": {"p": 1},
            "children": [
                {"name": "b", "queue_name": f"{queue_name}c", "data": {"v": 2}},
                {"name": "a", "queue_name": f"{queue_name}c", "data": {"v": 1},
                 "opts": child_opts},
            ]}


# --------------------------------------------------------------------------- adding


def test_flow_is_written_parent_first_in_bullmq_format(flows: FlowProducer, queue_name: str,
                                                       redis_client: redis.Redis) -> None:
    node = flows.add({
        "name": "invoice", "queue_name": f"{queue_name}p", "data": {"order": 7},
        "opts": {"attempts": 3, "priority": 2},
        "children": [
            {"name": "charge", "queue_name": f"{queue_name}c", "data": {"order": 7},
             "opts": {"fail_parent_on_failure": True, "job_id": "charge-7"}},
            {"name": "sub", "queue_name": f"{queue_name}c", "data": {}, "opts": {"delay": 1},
             "children": [{"name": "leaf", "queue_name": f"{queue_name}c", "data": {},
                           "opts": {"priority": 3, "remove_dependency_on_failure": True}}]},
        ],
    })
    r = redis_client
    parent, (charge, sub) = node.job, node.children
    leaf = sub.children[0].job
    assert parent.get_state() == "waiting-children"
    assert charge.job.get_state() == "waiting"
    assert sub.job.get_state() == "waiting-children"  # its delay applies after its child
    assert leaf.get_state() == "prioritized"
    pkey = f"bull:{queue_name}p:{parent.id}"
    assert {m.decode() for m in r.smembers(pkey + ":dependencies")} == {
        f"bull:{queue_name}c:charge-7", f"bull:{queue_name}c:{sub.job.id}"}
    stored = h(r, f"bull:{queue_name}c:charge-7")
    assert stored["parentKey"] == pkey
    assert json.loads(stored["parent"]) == {"id": parent.id, "queueKey": f"bull:{queue_name}p",
                                            "fpof": True}
    assert json.loads(stored["opts"]) == {
        "parent": {"id": parent.id, "queue": f"bull:{queue_name}p"}, "fpof": True,
        "jobId": "charge-7", "attempts": 0}
    assert "parentKey" not in h(r, pkey)
    assert json.loads(h(r, f"bull:{queue_name}c:{leaf.id}")["parent"])["rdof"] is True
    # What the producer handed back is what is stored.
    assert charge.job.fields == stored
    assert charge.job.parent == {"id": parent.id, "queue": f"{queue_name}p"}
    assert parent.parent is None
    events = [fields[b"event"] for _, fields in r.xrange(f"bull:{queue_name}p:events")]
    assert events == [b"added", b"waiting-children"]


def test_flow_ids_count_up_per_queue(flows: FlowProducer, queue_name: str) -> None:
    node = flows.add(tree(queue_name))
    assert node.job.id == "1"
    assert [c.job.id for c in node.children] == ["1", "2"]


def test_root_custom_id_makes_add_idempotent(flows: FlowProducer, queue_name: str,
                                             redis_client: redis.Redis) -> None:
    spec = tree(queue_name)
    spec["opts"] = {"job_id": "order-1"}
    first = flows.add(spec)
    again = flows.add(spec)
    assert again.job.id == first.job.id == "order-1"
    assert sorted(c.job.id for c in again.children) == ["1", "2"]
    assert redis_client.llen(f"bull:{queue_name}c:wait") == 2


def test_taken_child_id_refuses_the_whole_flow(flows: FlowProducer, queue_name: str,
                                               redis_client: redis.Redis) -> None:
    with Queue(f"{queue_name}c", connection=flows.client) as q:
        q.add("x", {}, job_id="taken")
    with pytest.raises(InvalidJobIdError):
        flows.add(tree(queue_name, job_id="taken"))
    assert redis_client.exists(f"bull:{queue_name}p:id") == 0
    assert redis_client.llen(f"bull:{queue_name}c:wait") == 1


@pytest.mark.parametrize("opts, message", [
    ({"group": "g1"}, "group"),
    ({"deduplication": {"id": "d"}}, "deduplication"),
    ({"fail_parent_on_failure": True, "ignore_dependency_on_failure": True}, "one failure"),
    ({"fail_parent_on_failure": "yes"}, "must be a bool"),
])
def test_bad_flows_are_refused_before_any_write(flows: FlowProducer, queue_name: str,
                                                redis_client: redis.Redis, opts: dict[str, Any],
                                                message: str) -> None:
    with pytest.raises(InvalidJobOptionsError, match=message):
        flows.add(tree(queue_name, **opts))
    assert not list(redis_client.scan_iter(match=f"bull:{queue_name}*"))


def test_same_custom_id_twice_in_a_flow_is_refused(flows: FlowProducer, queue_name: str) -> None:
    spec = tree(queue_name, job_id="x")
    spec["children"][0]["opts"] = {"job_id": "x"}
    with pytest.raises(InvalidJobIdError, match="twice"):
        flows.add(spec)


def test_add_bulk_and_get_flow(flows: FlowProducer, queue_name: str) -> None:
    nodes = flows.add_bulk([tree(queue_name), tree(queue_name)])
    assert [n.job.id for n in nodes] == ["1", "2"]
    found = flows.get_flow(nodes[1].job.id, f"{queue_name}p")
    assert found is not None
    assert sorted(c.job.name for c in found.children) == ["a", "b"]
    assert flows.get_flow("nope", f"{queue_name}p") is None
    shallow = flows.get_flow(nodes[1].job.id, f"{queue_name}p", depth=0)
    assert shallow is not None and shallow.children == []


def test_queue_add_with_parent(flows: FlowProducer, queue_name: str,
                               redis_client: redis.Redis) -> None:
    node = flows.add(tree(queue_name))
    with Queue(f"{queue_name}x", connection=flows.client) as q:
        child = q.add("extra", {"n": 1}, parent={"id": node.job.id, "queue": f"{queue_name}p"},
                      continue_parent_on_failure=True)
        assert child.parent == {"id": node.job.id, "queue": f"{queue_name}p"}
        assert child.fields == h(redis_client, f"bull:{queue_name}x:{child.id}")
        assert node.job.get_dependencies_count() == {"processed": 0, "unprocessed": 3,
                                                     "ignored": 0, "failed": 0}
        with pytest.raises(JobNotFoundError):
            q.add("orphan", {}, parent={"id": "missing", "queue": f"{queue_name}p"})
        with pytest.raises(InvalidJobOptionsError):
            q.add("bad", {}, parent={"id": "1"})  # type: ignore[typeddict-item]


# --------------------------------------------------------------------------- finishing


async def echo(job: Any) -> Any:
    return {"v": job.data.get("v")}


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


async def failing_a(job: Any) -> Any:
    if job.name == "a":
        raise RuntimeError("card declined")
    return job.name


async def run_policy(redis_url: str, queue_name: str, run_parent: bool,
                     **child_opts: Any) -> tuple[AsyncQueue, Any]:
    async with AsyncFlowProducer(connection=redis_url) as flows:
        node = await flows.add(tree(queue_name, **child_opts))
    pq = AsyncQueue(f"{queue_name}p", connection=redis_url)
    processors: dict[str, Any] = {f"{queue_name}c": failing_a}
    if run_parent:
        async def parent(job: Any) -> Any:
            return await job.get_dependencies()
        processors[f"{queue_name}p"] = parent
    async with workers(redis_url, processors):
        cq = AsyncQueue(f"{queue_name}c", connection=redis_url)
        await wait_for(lambda: cq.get_job_counts("completed", "failed"), what="children")
        await wait_for(lambda: _counts_are(cq, completed=1, failed=1), what="children done")
        await cq.close()
        if run_parent:
            await wait_for(lambda: _finished(pq, node.job.id), what="parent finished")
    return pq, await pq.get_job(node.job.id)


async def _counts_are(q: AsyncQueue, **want: int) -> bool:
    return await q.get_job_counts(*want) == want


async def _finished(q: AsyncQueue, job_id: str) -> bool:
    return await q.get_job_state(job_id) in ("completed", "failed")


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
        await wait_for(lambda: _finished(q, root.job.id), what="root failed")
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
        await wait_for(lambda: _finished(q, job.id), what="parent failed")
        stored = await q.get_job(job.id)
        assert stored is not None
        assert "children that have not finished" in (stored.failed_reason or "")


def test_remove_parent_with_pending_children_is_refused(flows: FlowProducer, queue_name: str,
                                                        redis_client: redis.Redis) -> None:
    node = flows.add(tree(queue_name))
    with Queue(f"{queue_name}p", connection=flows.client) as pq, \
            Queue(f"{queue_name}c", connection=flows.client) as cq:
        with pytest.raises(JobStateError, match="not finished"):
            pq.remove(node.job.id)
        assert cq.remove("1") and cq.remove("2")
        # The last child gone, the parent moved on to wait.
        assert pq.get_job_state(node.job.id) == "waiting"
        assert pq.remove(node.job.id)


def test_cancelled_children_count_as_failed_or_removed(flows: FlowProducer, queue_name: str,
                                                       redis_client: redis.Redis) -> None:
    """Cancelling a waiting child applies its failure policy; cancelling with
    remove=True takes it out of its parent's dependencies."""
    node = flows.add(tree(queue_name, fail_parent_on_failure=True))
    with Queue(f"{queue_name}p", connection=flows.client) as pq, \
            Queue(f"{queue_name}c", connection=flows.client) as cq:
        assert cq.cancel_job("2", "no longer needed") == "cancelled"
        assert pq.get_job_state(node.job.id) == "waiting"
        parent = pq.get_job(node.job.id)
        assert parent is not None
        assert parent.deferred_failure == f"child bull:{queue_name}c:2 failed"

        other = flows.add(tree(queue_name))
        assert cq.cancel_job("3", remove=True) == "cancelled"
        assert pq.get_job_state(other.job.id) == "waiting-children"
        assert cq.cancel_job("4", remove=True) == "cancelled"
        assert pq.get_job_state(other.job.id) == "waiting"


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
            await wait_for(lambda: _state_is(pq, node.job.id, state), what=state)
        assert await node.job.get_children_values() == {f"bull:{queue_name}c:1": {"v": 5}}
        found = await flows.get_flow(node.job.id, f"{queue_name}p")
        assert found is not None and found.children == []  # the child itself is gone


async def _state_is(q: AsyncQueue, job_id: str, state: str) -> bool:
    return await q.get_job_state(job_id) == state


def test_a_flow_under_an_existing_parent(flows: FlowProducer, queue_name: str,
                                         redis_client: redis.Redis) -> None:
    """The root's ``opts["parent"]`` puts the whole flow under an existing job."""
    with Queue(f"{queue_name}b", connection=flows.client) as bq:
        batch = bq.add("batch", {})
        spec = tree(queue_name)
        spec["opts"] = {"parent": {"id": batch.id, "queue": f"{queue_name}b"},
                        "fail_parent_on_failure": True}
        node = flows.add(spec)
        assert node.job.parent == {"id": batch.id, "queue": f"{queue_name}b"}
        stored = h(redis_client, f"bull:{queue_name}p:{node.job.id}")
        assert node.job.fields == stored
        assert json.loads(stored["parent"])["fpof"] is True
        assert batch.get_dependencies()["unprocessed"] == [f"bull:{queue_name}p:{node.job.id}"]
        with pytest.raises(InvalidJobOptionsError, match="only the root"):
            bad = tree(queue_name)
            bad["children"][0]["opts"] = {"parent": {"id": batch.id, "queue": f"{queue_name}b"}}
            flows.add(bad)


def test_remove_child_dependency_lets_the_parent_go_on(flows: FlowProducer,
                                                        queue_name: str) -> None:
    node = flows.add(tree(queue_name))
    with Queue(f"{queue_name}p", connection=flows.client) as pq:
        first, second = (c.job for c in node.children)
        assert first.remove_child_dependency() is True
        assert first.parent is None
        assert first.remove_child_dependency() is False
        assert pq.get_job_state(node.job.id) == "waiting-children"
        assert second.remove_child_dependency() is True
        assert pq.get_job_state(node.job.id) == "waiting"
        assert node.job.get_dependencies_count()["unprocessed"] == 0


async def test_ignored_children_failures(redis_url: str, queue_name: str) -> None:
    pq, parent = await run_policy(redis_url, queue_name, True, ignore_dependency_on_failure=True)
    assert await parent.get_ignored_children_failures() == {
        f"bull:{queue_name}c:2": "card declined"}
    await pq.close()


@pytest.mark.parametrize("extra", [{"repeat": {"every": 10}}, {"group": "g"},
                                   {"deduplication": {"id": "d"}}])
def test_queue_add_with_parent_refuses_what_flows_cannot_hold(
        flows: FlowProducer, queue_name: str, redis_client: redis.Redis,
        extra: dict[str, Any]) -> None:
    node = flows.add(tree(queue_name))
    before = sorted(redis_client.scan_iter(match=f"bull:{queue_name}*"))
    with Queue(f"{queue_name}c", connection=flows.client) as q, \
            pytest.raises(InvalidJobOptionsError):
        q.add("x", {}, parent={"id": node.job.id, "queue": f"{queue_name}p"},
              **extra)
    assert sorted(redis_client.scan_iter(match=f"bull:{queue_name}*")) == before


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
        await wait_for(lambda: _counts_are(cq, completed=2), what="children completed")
    assert redis_client.get(deps) == b"damaged"
    assert redis_client.zscore(f"bull:{queue_name}p:waiting-children", node.job.id) is not None


def test_add_under_a_damaged_parent_is_refused(flows: FlowProducer, queue_name: str,
                                               redis_client: redis.Redis) -> None:
    redis_client.set(f"bull:{queue_name}p:broken", "not a hash")
    with Queue(f"{queue_name}c", connection=flows.client) as q:
        with pytest.raises(JobStateError, match="damaged"):
            q.add("x", {}, parent={"id": "broken", "queue": f"{queue_name}p"})
        assert q.get_job_counts("waiting") == {"waiting": 0}
