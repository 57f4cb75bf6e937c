"""Fault injection on flows: worker processes killed with SIGKILL while flow children
finish. A child's completion and its parent's move out of ``waiting-children``
happen in one script, so whatever the kill interrupts (a child mid-run, a
finish sent but not answered), every parent moves exactly once, with every
child's result, and runs."""

from __future__ import annotations

import random
import time

import pytest
from harness import Scenario, check_states

from pyqueue import FlowProducer

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

LOCK, STALLED = 1.0, 0.5
PARENTS, CHILDREN = 30, 20


def test_kill9_while_children_finish_moves_each_parent_once(scenario: Scenario) -> None:
    sc = scenario
    sc.client.hset(sc.base + "meta", "opts.maxLenEvents", 1_000_000)  # keep every event
    opts = {"lock_duration": LOCK, "stalled_interval": STALLED, "concurrency": 4,
            "duration": 0.03}
    workers = [sc.start_worker(**opts) for _ in range(3)]
    sc.wait_ready(workers)
    with FlowProducer(connection=sc.url) as flows:
        nodes = flows.add_bulk([
            {"name": "parent", "queue_name": sc.queue_name, "data": {},
             "children": [{"name": "child", "queue_name": sc.queue_name, "data": {"i": i}}
                          for i in range(CHILDREN)]}
            for _ in range(PARENTS)])
    parents = [n.job.id for n in nodes]
    every = parents + [c.job.id for n in nodes for c in n.children]
    for job_id in every:
        sc.ledger.write("add", id=job_id)
    sc.added.extend(every)

    rng = random.Random(11)
    killed = 0
    while not sc.finished() and killed < 6:
        time.sleep(0.3)  # the fault schedule
        victim = rng.choice([w for w in sc.workers if w.alive()])
        victim.kill()
        killed += 1
        sc.start_worker(**opts)
    sc.wait_finished(90)
    sc.check(allow_duplicates=True)
    assert not check_states(sc.client, sc.base, every)

    moves: dict[str, int] = {}
    for _, fields in sc.client.xrange(sc.base + "events"):
        if fields.get(b"event") == b"waiting" and fields.get(b"prev") == b"waiting-children":
            job_id = fields[b"jobId"].decode()
            moves[job_id] = moves.get(job_id, 0) + 1
    assert moves == dict.fromkeys(parents, 1)
    for node in nodes:
        key = sc.base + node.job.id
        assert sc.client.scard(key + ":dependencies") == 0
        assert sc.client.hlen(key + ":processed") == CHILDREN
        assert sc.client.zscore(sc.base + "completed", node.job.id) is not None
    assert killed >= 3, "the kills ended before they began"
    stalled = sum(1 for job_id in every if int(sc.client.hget(sc.base + job_id, "stc") or 0))
    print(f"\nCHAOS flows_kill9: kills={killed} stalled={stalled} jobs={len(every)}")
    assert stalled, "no kill hit a job in flight"
