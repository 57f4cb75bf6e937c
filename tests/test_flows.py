"""Adding flows: FlowProducer writes the tree atomically in BullMQ's format, or
nothing; Queue.add(parent=...); what flows refuse; removing parents and children."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from pyqueue import (
    FlowProducer,
    InvalidJobIdError,
    InvalidJobOptionsError,
    JobNotFoundError,
    JobStateError,
    Queue,
)
from tests._flow_helpers import h, tree


@pytest.fixture
def flows(redis_url: str) -> Iterator[FlowProducer]:
    with FlowProducer(connection=redis_url) as producer:
        yield producer


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


@pytest.mark.parametrize("extra", [{"repeat": {"every": 10}}, {"deduplication": {"id": "d"}}])
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


def test_add_under_a_damaged_parent_is_refused(flows: FlowProducer, queue_name: str,
                                               redis_client: redis.Redis) -> None:
    redis_client.set(f"bull:{queue_name}p:broken", "not a hash")
    with Queue(f"{queue_name}c", connection=flows.client) as q:
        with pytest.raises(JobStateError, match="damaged"):
            q.add("x", {}, parent={"id": "broken", "queue": f"{queue_name}p"})
        assert q.get_job_counts("waiting") == {"waiting": 0}


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
