"""Flows across BullMQ (Node, the real ``bullmq@6.7.0``) and pyqueue: the same tree
leaves the same keys; a Node flow is processed by pyqueue workers and a pyqueue
flow by Node workers, with each failure policy ending the same way."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from pyqueue import AsyncQueue, FlowProducer, Worker
from tests._worker_helpers import wait_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------- same bytes


def node_tree(q: str) -> dict[str, Any]:
    return {"name": "invoice", "queueName": f"{q}p", "data": {"order": 7},
            "opts": {"attempts": 3, "priority": 2},
            "children": [
                {"name": "charge", "queueName": f"{q}c", "data": {"order": 7},
                 "opts": {"failParentOnFailure": True, "jobId": "charge-7"}},
                {"name": "c2", "queueName": f"{q}p", "data": {},
                 "opts": {"ignoreDependencyOnFailure": True, "attempts": 2,
                          "backoff": {"type": "fixed", "delay": 1000}}},
                {"name": "sub", "queueName": f"{q}c", "data": {"b": 3},
                 "opts": {"continueParentOnFailure": True, "delay": 1000},
                 "children": [{"name": "leaf", "queueName": f"{q}c", "data": {},
                               "opts": {"removeDependencyOnFailure": True, "priority": 3}}]},
                {"name": "late", "queueName": f"{q}c", "data": {}, "opts": {"delay": 5000}},
            ]}


def py_tree(q: str) -> dict[str, Any]:
    return {"name": "invoice", "queue_name": f"{q}p", "data": {"order": 7},
            "opts": {"attempts": 3, "priority": 2},
            "children": [
                {"name": "charge", "queue_name": f"{q}c", "data": {"order": 7},
                 "opts": {"fail_parent_on_failure": True, "job_id": "charge-7"}},
                {"name": "c2", "queue_name": f"{q}p", "data": {},
                 "opts": {"ignore_dependency_on_failure": True, "attempts": 2,
                          "backoff": {"type": "fixed", "delay": 1}}},
                {"name": "sub", "queue_name": f"{q}c", "data": {"b": 3},
                 "opts": {"continue_parent_on_failure": True, "delay": 1},
                 "children": [{"name": "leaf", "queue_name": f"{q}c", "data": {},
                               "opts": {"remove_dependency_on_failure": True, "priority": 3}}]},
                {"name": "late", "queue_name": f"{q}c", "data": {}, "opts": {"delay": 5}},
            ]}


def positions(node: dict[str, Any], out: dict[tuple[str, str], str] | None = None,
              path: str = "r") -> dict[tuple[str, str], str]:
    """(queue, id) -> position in the tree ("r", "r.0", "r.2.0", ...)."""
    out = {} if out is None else out
    out[(node["queue"], node["id"])] = path
    for i, child in enumerate(node["children"]):
        positions(child, out, f"{path}.{i}")
    return out


def py_shape(node: Any) -> dict[str, Any]:
    return {"queue": node.job.queue_name, "id": node.job.id, "name": node.job.name,
            "children": [py_shape(c) for c in node.children]}


def snapshot(r: redis.Redis, q: str, where: dict[tuple[str, str], str]) -> dict[str, Any]:
    """Everything stored for a flow in queues ``<q>p`` and ``<q>c``, with job ids
    replaced by tree positions and ``q`` by ``Q``."""
    def pos_of(queue: str, job_id: str) -> str:
        return where.get((queue, job_id), f"?{job_id}")

    def norm_key(key: str) -> str:  # bull:<queue>:<id>[:suffix]
        _, queue, job_id, *rest = key.split(":")
        return ":".join([pos_of(queue, job_id), *rest]).replace(q, "Q")

    def norm_json(value: str, paths: tuple[str, ...]) -> Any:
        data = json.loads(value)
        for path in paths:
            holder = data.get(path) if path else data
            if isinstance(holder, dict) and "id" in holder:
                queue = (holder.get("queueKey") or holder.get("queue")).split(":")[1]
                holder["id"] = pos_of(queue, holder["id"])
                for k in ("queueKey", "queue"):
                    if k in holder:
                        holder[k] = holder[k].replace(q, "Q")
        return data

    out: dict[str, Any] = {"jobs": {}, "sets": {}}
    for (queue, job_id), pos in where.items():
        key = f"bull:{queue}:{job_id}"
        fields = {text(k): text(v) for k, v in r.hgetall(key).items()}
        fields.pop("timestamp")
        if "parentKey" in fields:
            fields["parentKey"] = norm_key(fields["parentKey"])
            fields["parent"] = norm_json(fields["parent"], ("",))
        fields["opts"] = norm_json(fields["opts"], ("parent",))
        fields["data"] = json.loads(fields["data"])
        out["jobs"][pos] = fields
        deps = r.smembers(key + ":dependencies")
        out["sets"][pos] = sorted(norm_key(text(m)) for m in deps)
    for suffix in ("p", "c"):
        queue = f"{q}{suffix}"
        base = f"bull:{queue}:"

        def ids(members: list[Any], queue: str = queue) -> list[str]:
            return [pos_of(queue, text(m)) for m in members]
        out[suffix] = {
            "keys": sorted(text(k)[len(base):] for k in r.scan_iter(match=base + "*")
                           if not any(text(k)[len(base):].startswith(j)
                                      for (qq, j) in where if qq == queue)),
            "wait": ids(r.lrange(base + "wait", 0, -1)),
            "waiting-children": sorted(ids(r.zrange(base + "waiting-children", 0, -1))),
            "prioritized": [(pos_of(queue, text(m)), s % 2**32 > 0, s // 2**32) for m, s in
                            r.zrange(base + "prioritized", 0, -1, withscores=True)],
            "delayed": sorted(ids(r.zrange(base + "delayed", 0, -1))),
            "marker": sorted(text(m) for m in r.zrange(base + "marker", 0, -1)),
            "id": text(r.get(base + "id")),
            "pc": r.get(base + "pc") is not None,
            "meta": sorted(text(k) for k in r.hkeys(base + "meta")) ,
            "events": [
                [(text(k), pos_of(queue, text(v)) if text(k) == "jobId" else
                  ("<due>" if text(k) == "delay" else text(v))) for k, v in fields.items()]
                for _, fields in r.xrange(base + "events")],
        }
        out[suffix]["meta"] = [m for m in out[suffix]["meta"] if m != "version"]
    return out


def test_same_flow_same_redis_format(bull_flow, redis_url, queue_name, redis_client):
    """A FlowProducer tree added by BullMQ and by pyqueue leaves the same hashes,
    parent links, dependency sets, states, scores, markers and events (job ids
    and timestamps aside: BullMQ's flow ids are random UUIDs)."""
    nq, pq = f"{queue_name}n", f"{queue_name}y"
    (node_flow,) = bull_flow("add", trees=[node_tree(nq)])["flows"]
    with FlowProducer(connection=redis_url) as flows:
        py_flow = py_shape(flows.add(py_tree(pq)))
    node_snap = snapshot(redis_client, nq, positions(node_flow))
    py_snap = snapshot(redis_client, pq, positions(py_flow))
    assert py_snap["jobs"] == node_snap["jobs"]
    assert py_snap["sets"] == node_snap["sets"]
    for suffix in ("p", "c"):
        assert py_snap[suffix] == node_snap[suffix], suffix
    assert node_snap["c"]["waiting-children"] == ["r.2"]
    assert node_snap["jobs"]["r.0"]["parent"] == {"id": "r", "queueKey": "bull:Qp",
                                                  "fpof": True}


# ---------------------------------------------------------------- outcomes

POLICIES = {  # BullMQ option -> pyqueue option
    "failParentOnFailure": "fail_parent_on_failure",
    "continueParentOnFailure": "continue_parent_on_failure",
    "ignoreDependencyOnFailure": "ignore_dependency_on_failure",
    "removeDependencyOnFailure": "remove_dependency_on_failure",
    "none": None,
}


def policy_tree(q: str, policy: str, *, node: bool) -> dict[str, Any]:
    """A parent in ``<q>p`` whose children in ``<q>c`` are ``ok`` then ``bad``
    (fails, with ``policy``); ``queueName``/``queue_name`` as the side wants."""
    qn = "queueName" if node else "queue_name"
    bad_opts: dict[str, Any] = {}
    if policy != "none":
        bad_opts = {policy: True} if node else {POLICIES[policy]: True}  # type: ignore[dict-item]
    return {"name": "parent", qn: f"{q}p", "data": {},
            "children": [{"name": "ok", qn: f"{q}c", "data": {}},
                         {"name": "bad", qn: f"{q}c", "data": {"fail": "declined"},
                          "opts": bad_opts}]}


#: policy -> the parent's end: (state, failed reason or None)
EXPECTED = {
    "failParentOnFailure": "failed",
    "continueParentOnFailure": "completed",
    "ignoreDependencyOnFailure": "completed",
    "removeDependencyOnFailure": "completed",
    "none": "waiting-children",
}


async def py_processor(job: Any) -> Any:
    if isinstance(job.data.get("fail"), str):
        raise RuntimeError(job.data["fail"])
    deps = await job.get_dependencies()
    return {"name": job.name, "values": await job.get_children_values(),
            "ignored": deps["ignored"]}


async def test_node_flows_processed_by_pyqueue_workers(bull_flow, redis_url, queue_name):
    """Node FlowProducer (parent and children in different queues), pyqueue
    workers: each policy ends as in BullMQ."""
    names = {p: f"{queue_name}{i}" for i, p in enumerate(POLICIES)}
    flows = (await bull_flow.aio("add", trees=[policy_tree(names[p], p, node=True)
                                               for p in POLICIES]))["flows"]
    procs = {f"{q}{s}": py_processor for q in names.values() for s in "pc"}
    started = [Worker(qn, fn, connection=redis_url, autorun=False, shutdown_grace=2,
                      drain_delay=0.05) for qn, fn in procs.items()]
    for w in started:
        await w.start()
    try:
        for policy, flow in zip(POLICIES, flows, strict=True):
            async with AsyncQueue(f"{names[policy]}p", connection=redis_url) as pq, \
                    AsyncQueue(f"{names[policy]}c", connection=redis_url) as cq:
                await wait_for(lambda cq=cq: _counts(cq, completed=1, failed=1), what=policy)
                want = EXPECTED[policy]
                await wait_for(lambda pq=pq, flow=flow, want=want: _state(pq, flow["id"], want),
                               what=f"{policy}: parent {want}")
                parent = await pq.get_job(flow["id"])
                assert parent is not None
                bad_key = f"bull:{names[policy]}c:{flow['children'][1]['id']}"
                ok_key = f"bull:{names[policy]}c:{flow['children'][0]['id']}"
                if want == "failed":
                    assert parent.failed_reason == f"child {bad_key} failed"
                elif want == "completed":
                    assert parent.return_value["values"] == {
                        ok_key: {"name": "ok", "values": {}, "ignored": {}}}
                    ignored = {bad_key: "declined"} if policy in (
                        "continueParentOnFailure", "ignoreDependencyOnFailure") else {}
                    assert parent.return_value["ignored"] == ignored
    finally:
        for w in started:
            await w.close(force=True)


async def _counts(q: AsyncQueue, **want: int) -> bool:
    return await q.get_job_counts(*want) == want


async def _state(q: AsyncQueue, job_id: str, want: str) -> bool:
    return await q.get_job_state(job_id) == want


def test_pyqueue_flows_processed_by_node_workers(bull_flow, redis_url, queue_name,
                                                 redis_client):
    """pyqueue FlowProducer, BullMQ workers: each policy ends as pyqueue's own
    workers end it; Node's getFlow (Bull Board's flow view) reads the tree."""
    names = {p: f"{queue_name}{i}" for i, p in enumerate(POLICIES)}
    with FlowProducer(connection=redis_url) as flows:
        added = flows.add_bulk([policy_tree(names[p], p, node=False) for p in POLICIES])
    finals = 2 * len(POLICIES) + sum(1 for w in EXPECTED.values() if w != "waiting-children")
    queues = [f"{q}{s}" for q in names.values() for s in "pc"]
    result = bull_flow("work", queues=queues, count=finals, timeoutMs=20000)
    assert not result["timedOut"], result
    with FlowProducer(connection=redis_url) as flows:
        for policy, node in zip(POLICIES, added, strict=True):
            with_queue = f"{names[policy]}p"
            state = node.job.get_state()
            assert state == EXPECTED[policy], policy
            bad_key = f"bull:{names[policy]}c:{node.children[1].job.id}"
            stored = flows.get_flow(node.job.id, with_queue)
            assert stored is not None
            if state == "failed":
                assert stored.job.failed_reason == f"child {bad_key} failed"
            if state == "completed":
                assert list(stored.job.return_value["values"]) == [
                    f"bull:{names[policy]}c:{node.children[0].job.id}"]
    seen = bull_flow("getflow", queue=f"{names['none']}p", id=added[-1].job.id)["flow"]
    assert sorted(c["name"] for c in seen["children"]) == ["bad", "ok"]
    deps = bull_flow("deps", queue=f"{names['none']}p", id=added[-1].job.id)
    assert deps["counts"]["unprocessed"] == 1 and deps["counts"]["processed"] == 1


async def test_mixed_node_children_pyqueue_parent(bull_flow, redis_url, queue_name):
    """Node FlowProducer and Node workers for the children; a pyqueue worker for
    the parent gets their values."""
    tree = {"name": "parent", "queueName": f"{queue_name}p", "data": {},
            "children": [{"name": f"c{i}", "queueName": f"{queue_name}c", "data": {"i": i}}
                         for i in range(3)]}
    (flow,) = (await bull_flow.aio("add", trees=[tree]))["flows"]
    await bull_flow.aio("work", queues=[f"{queue_name}c"], count=3)
    async with AsyncQueue(f"{queue_name}p", connection=redis_url) as pq:
        assert await pq.get_job_state(flow["id"]) == "waiting"
        async with Worker(f"{queue_name}p", py_processor, connection=redis_url,
                          shutdown_grace=2):
            job = await pq.get_job(flow["id"])
            assert job is not None
            result = await job.wait_until_finished(timeout=10)
    assert sorted(v["name"] for v in result["values"].values()) == ["c0", "c1", "c2"]


def test_bull_board_flow_view_shows_a_pyqueue_flow(bull_flow, redis_url, queue_name):
    """Bull Board's ``GET /api/queues/:queue/:id/flow`` (its route handler, from
    ``@bull-board/api``), asked about a grandchild, finds the root through the
    children's ``opts.parent`` and shows the whole pyqueue flow across queues."""
    email, payments = f"{queue_name}e", f"{queue_name}p"
    with FlowProducer(connection=redis_url) as flows:
        node = flows.add({"name": "invoice", "queue_name": email, "data": {},
                          "children": [{"name": "charge", "queue_name": payments, "data": {},
                                        "children": [{"name": "fraud-check",
                                                      "queue_name": payments, "data": {}}]}]})
    grandchild = node.children[0].children[0].job
    answer = bull_flow("board", queues=[email, payments], queue=payments, id=grandchild.id)
    assert answer["status"] == 200
    root = answer["body"]["flowRoot"]

    def shape(n: dict[str, Any]) -> tuple[Any, ...]:
        return (n["queueName"], n["id"], n["name"], n["state"],
                tuple(shape(c) for c in n["children"]))
    assert shape(root) == (email, node.job.id, "invoice", "waiting-children", (
        (payments, node.children[0].job.id, "charge", "waiting-children", (
            (payments, grandchild.id, "fraud-check", "waiting", ()),)),))
    assert root["dependencies"] == {"processed": 0, "unprocessed": 1, "ignored": 0,
                                    "failed": 0}


async def test_same_release_same_bytes(bull_flow, redis_url, queue_name, redis_client):
    """Children run by BullMQ's worker and by pyqueue's, for every policy: the
    parents end up with the same fields, the same ``:processed``, ``:failed``,
    ``:unsuccessful`` and ``:dependencies``, in the same state, with the same
    events."""
    node_q = {p: f"{queue_name}n{i}" for i, p in enumerate(POLICIES)}
    py_q = {p: f"{queue_name}y{i}" for i, p in enumerate(POLICIES)}
    flows_n = (await bull_flow.aio("add", trees=[policy_tree(node_q[p], p, node=True)
                                                 for p in POLICIES]))["flows"]
    await bull_flow.aio("work", queues=[f"{q}c" for q in node_q.values()],
                        count=2 * len(POLICIES))
    with FlowProducer(connection=redis_url) as flows:
        nodes = flows.add_bulk([policy_tree(py_q[p], p, node=False) for p in POLICIES])
    workers = [Worker(f"{q}c", py_processor, connection=redis_url, autorun=False,
                      shutdown_grace=2, drain_delay=0.05) for q in py_q.values()]
    for w in workers:
        await w.start()
    try:
        for q in py_q.values():
            async with AsyncQueue(f"{q}c", connection=redis_url) as cq:
                await wait_for(lambda cq=cq: _counts(cq, completed=1, failed=1), what=q)
    finally:
        for w in workers:
            await w.close()
    r = redis_client

    def parent_side(q: str, parent_id: str, child_ids: list[str]) -> dict[str, Any]:
        key = f"bull:{q}p:{parent_id}"
        renames = {f"bull:{q}c:{cid}": f"child{i}" for i, cid in enumerate(child_ids)}
        fields = {text(k): text(v) for k, v in r.hgetall(key).items()}
        fields.pop("timestamp")
        if "defa" in fields:
            fields["defa"] = fields["defa"].replace(f"bull:{q}c:{child_ids[1]}", "child1")
        events = [[(text(k), "<id>" if text(k) == "jobId" else text(v))
                   for k, v in e.items()] for _, e in r.xrange(f"bull:{q}p:events")]
        return {
            "fields": fields, "events": events,
            "processed": {renames[text(k)]: json.loads(v)
                          for k, v in r.hgetall(key + ":processed").items()},
            "failed": {renames[text(k)]: text(v)
                       for k, v in r.hgetall(key + ":failed").items()},
            "unsuccessful": [renames[text(m)] for m in r.zrange(key + ":unsuccessful", 0, -1)],
            "deps": sorted(renames[text(m)] for m in r.smembers(key + ":dependencies")),
            "state": [k for k in ("wait", "waiting-children", "prioritized", "delayed")
                      if r.exists(f"bull:{q}p:{k}")],
        }

    for policy, flow, node in zip(POLICIES, flows_n, nodes, strict=True):
        node_side = parent_side(node_q[policy], flow["id"], [c["id"] for c in flow["children"]])
        py_side = parent_side(py_q[policy], node.job.id, [c.job.id for c in node.children])
        assert py_side == node_side, policy
        assert py_side["processed"] == {"child0": {"name": "ok", "values": {}, "ignored": {}}}
