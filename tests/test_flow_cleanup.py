"""clean(), drain() and obliterate() follow parent links (as BullMQ 6's "hard"
removal): a deleted child leaves its parent's dependencies; a parent left
waiting for nothing is deleted when it is in the same queue, moves on when it
is in another. (tests/interop/test_interop_flows.py checks the same cases
against the real bullmq.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from pyqueue import FlowProducer, Queue
from tests._flow_helpers import h


@pytest.fixture
def flows(redis_url: str) -> Iterator[FlowProducer]:
    with FlowProducer(connection=redis_url) as producer:
        yield producer


def node(name: str, queue: str, children: list[dict[str, Any]] | None = None,
         **opts: Any) -> dict[str, Any]:
    return {"name": name, "queue_name": queue, "data": {}, "opts": opts,
            "children": children or []}


def state(redis_url: str, queue: str, job_id: str) -> str:
    with Queue(queue, connection=redis_url) as q:
        return q.get_job_state(job_id)


def events(r: redis.Redis, queue: str) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in r.xrange(f"bull:{queue}:events")]


def test_drain_moves_a_parent_of_another_queue_on(flows: FlowProducer, queue_name: str,
                                                   redis_url: str,
                                                   redis_client: redis.Redis) -> None:
    p, c = f"{queue_name}p", f"{queue_name}c"
    root = flows.add(node("p", p, [node("c1", c), node("c2", c)]))
    with Queue(c, connection=redis_url) as children:
        children.drain()
    assert state(redis_url, p, root.job.id) == "waiting"
    assert not redis_client.exists(f"bull:{p}:{root.job.id}:dependencies")
    assert events(redis_client, p)[-1] == {"event": "waiting", "jobId": root.job.id,
                                           "prev": "waiting-children"}


def test_drain_deletes_a_parent_of_the_same_queue_and_goes_up(
        flows: FlowProducer, queue_name: str, redis_url: str,
        redis_client: redis.Redis) -> None:
    q, g = f"{queue_name}q", f"{queue_name}g"
    root = flows.add(node("g", g, [node("p", q, [node("c1", q), node("c2", q)])]))
    parent = root.children[0].job
    with Queue(q, connection=redis_url) as queue:
        queue.drain()
        assert queue.get_job(parent.id) is None
        assert queue.get_job_counts() == {s: 0 for s in queue.get_job_counts()}
    assert not redis_client.keys(f"bull:{q}:{parent.id}*")
    assert state(redis_url, g, root.job.id) == "waiting"  # its last child went
    assert {"event": "removed", "jobId": parent.id, "prev": "waiting-children"} \
        in events(redis_client, q)


def test_drain_leaves_a_parent_that_still_waits_for_others(
        flows: FlowProducer, queue_name: str, redis_url: str,
        redis_client: redis.Redis) -> None:
    q, c = f"{queue_name}q", f"{queue_name}c"
    root = flows.add(node("p", q, [node("c1", q), node("c2", c)]))
    kept, drained = root.children
    with Queue(c, connection=redis_url) as children:
        children.drain()
    assert state(redis_url, q, root.job.id) == "waiting-children"
    assert {m.decode() for m in redis_client.smembers(f"bull:{q}:{root.job.id}:dependencies")} \
        == {f"bull:{q}:{kept.job.id}"}
    deps = root.job.get_dependencies()
    assert deps["unprocessed"] == [f"bull:{q}:{kept.job.id}"]
    assert f"bull:{c}:{drained.job.id}" not in str(deps)


def test_drain_with_delayed_and_a_parent_with_its_own_priority_and_delay(
        flows: FlowProducer, queue_name: str, redis_url: str) -> None:
    p, c = f"{queue_name}p", f"{queue_name}c"
    prio = flows.add(node("p1", p, [node("c1", c, delay=60)], priority=3))
    late = flows.add(node("p2", p, [node("c2", c)], delay=60))
    with Queue(c, connection=redis_url) as children:
        children.drain()  # c1 is delayed: drain(delayed=False) keeps it
        assert state(redis_url, p, prio.job.id) == "waiting-children"
        children.drain(delayed=True)
    assert state(redis_url, p, prio.job.id) == "prioritized"
    assert state(redis_url, p, late.job.id) == "delayed"


def test_clean_of_a_failed_child_releases_its_parent(flows: FlowProducer, queue_name: str,
                                                     redis_url: str,
                                                     redis_client: redis.Redis) -> None:
    p, c = f"{queue_name}p", f"{queue_name}c"
    root = flows.add(node("p", p, [node("c1", c)]))
    child = root.children[0].job
    # The child failed for good with no policy: its parent keeps waiting for it.
    redis_client.lrem(f"bull:{c}:wait", 0, child.id)
    redis_client.zadd(f"bull:{c}:failed", {child.id: 1})
    redis_client.hset(f"bull:{c}:{child.id}", mapping={"finishedOn": 1, "failedReason": "x"})
    with Queue(c, connection=redis_url) as children:
        assert children.clean(0, state="completed") == []
        assert state(redis_url, p, root.job.id) == "waiting-children"
        assert children.clean(0, state="failed") == [child.id]
    assert state(redis_url, p, root.job.id) == "waiting"


def test_clean_of_waiting_children_in_batches(flows: FlowProducer, queue_name: str,
                                              redis_url: str,
                                              redis_client: redis.Redis) -> None:
    q = f"{queue_name}q"
    roots = [flows.add(node(f"p{i}", q, [node("c", q)])) for i in range(3)]
    for root in roots:  # old enough for clean(0) whatever the clocks of both clients say
        redis_client.hset(f"bull:{q}:{root.children[0].job.id}", "timestamp", 1)
    with Queue(q, connection=redis_url) as queue:
        removed = queue.clean(0, limit=2, state="wait")
        assert len(removed) == 2
        gone = [r for r in roots if queue.get_job(r.job.id) is None]
        assert len(gone) == 2  # their parents went with them
        assert len(queue.clean(0, state="wait")) == 1
        assert all(queue.get_job(r.job.id) is None for r in roots)


def test_obliterate_releases_parents_in_other_queues(flows: FlowProducer, queue_name: str,
                                                     redis_url: str,
                                                     redis_client: redis.Redis) -> None:
    p, c = f"{queue_name}p", f"{queue_name}c"
    root = flows.add(node("p", p, [node(f"c{i}", c) for i in range(5)]))
    with Queue(c, connection=redis_url) as children:
        children.obliterate(force=True)
    assert not redis_client.keys(f"bull:{c}:*")
    assert state(redis_url, p, root.job.id) == "waiting"


def test_obliterate_of_a_parent_queue_leaves_other_queues_children(
        flows: FlowProducer, queue_name: str, redis_url: str,
        redis_client: redis.Redis) -> None:
    p, c = f"{queue_name}p", f"{queue_name}c"
    root = flows.add(node("p", p, [node("c1", c)]))
    child = root.children[0].job
    with Queue(p, connection=redis_url) as parents:
        parents.obliterate(force=True)
    assert not redis_client.keys(f"bull:{p}:*")  # BullMQ 6.7.0 leaves waiting-children
    assert state(redis_url, c, child.id) == "waiting"
    assert h(redis_client, f"bull:{c}:{child.id}")["parentKey"] == f"bull:{p}:{root.job.id}"
