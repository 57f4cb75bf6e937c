"""drain(), clean() and obliterate() across flows end like the real ``bullmq@6.7.0``'s:
the same tree, the same operation by BullMQ (Node) and by pyqueue, the same
state (or absence) of every job afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from pyqueue import FlowProducer, Queue

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def node(name: str, queue: str, *children: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "queue_name": queue, "data": {}, "children": list(children)}


# name -> (tree over queues Q, C and G, operation on one queue)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "drain-children-queue": (node("p", "P", node("c1", "C"), node("c2", "C")),
                             {"op": "drain", "queue": "C"}),
    "drain-same-queue-up-to-other": (node("g", "G", node("p", "Q", node("c1", "Q"),
                                                         node("c2", "Q"))),
                                     {"op": "drain", "queue": "Q"}),
    "drain-one-of-two-queues": (node("p", "Q", node("c1", "Q"), node("c2", "C")),
                                {"op": "drain", "queue": "C"}),
    "obliterate-children-queue": (node("p", "P", node("c1", "C"), node("c2", "C")),
                                  {"op": "obliterate", "queue": "C"}),
    "clean-wait": (node("p", "P", node("c1", "C"), node("q", "Q", node("c2", "Q"))),
                   {"op": "clean", "state": "wait", "queue": "C"}),
    "clean-wait-same-queue": (node("p", "P", node("q", "Q", node("c2", "Q"))),
                              {"op": "clean", "state": "wait", "queue": "Q"}),
}


def renamed(tree: dict[str, Any], side: str) -> dict[str, Any]:
    return {**tree, "queue_name": side + tree["queue_name"],
            "children": [renamed(c, side) for c in tree["children"]]}


def where(redis_url: str, flow: Any) -> list[tuple[str, str]]:
    """(job name, state or "gone") of every job of the tree, parents first."""
    out = []
    stack = [flow]
    while stack:
        n = stack.pop(0)
        with Queue(n.job.queue_name, connection=redis_url) as q:
            found = q.get_job(n.job.id)
            out.append((n.job.name, found.get_state() if found else "gone"))
        stack += n.children
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_cleanup_follows_parents_like_bullmq(case: str, bull_flow: Any, redis_url: str,
                                             queue_name: str) -> None:
    tree, action = CASES[case]
    ends = {}
    with FlowProducer(connection=redis_url) as flows:
        for side in ("node", "py"):
            flow = flows.add(renamed(tree, f"{queue_name}{side}"))
            stack = [flow]  # old enough for clean(0) by any clock (the two sides' differ)
            while stack:
                n = stack.pop()
                flows.client.hset(f"bull:{n.job.queue_name}:{n.job.id}", "timestamp", 1)
                stack += n.children
            target = f"{queue_name}{side}{action['queue']}"
            if side == "node":
                bull_flow("admin", **{**action, "queue": target})
            else:
                with Queue(target, connection=redis_url) as q:
                    if action["op"] == "drain":
                        q.drain()
                    elif action["op"] == "clean":
                        q.clean(0, state=action["state"])
                    else:
                        q.obliterate(force=True)
            ends[side] = where(redis_url, flow)
    assert ends["py"] == ends["node"]
    assert any(s == "gone" for _, s in ends["py"])
