"""Dead letters under faults: every job that failed for good has exactly one
dead-letter entry, whatever was killed meanwhile (the copy is made by the
script that fails the job, so there is no window between the two)."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from typing import Any

import pytest
import redis
from harness import Scenario

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

OPTS: dict[str, Any] = {"lock_duration": 1.0, "stalled_interval": 0.5, "concurrency": 4,
                        "duration": 0.01}


def dead_letter_ids(client: redis.Redis, dlq: str) -> list[str]:
    """The failed job id of every entry in dead-letter queue ``dlq``."""
    ids = client.lrange(f"bull:{dlq}:wait", 0, -1)
    pipe = client.pipeline(transaction=False)
    for entry_id in ids:
        pipe.hget(f"bull:{dlq}:{entry_id.decode()}", "data")
    return [json.loads(data)["job_id"] for data in pipe.execute()]


def test_kill9_and_client_kill_storm_every_failure_dead_lettered_once(
        scenario: Scenario) -> None:
    sc = scenario
    dlq = f"{sc.queue_name}-dead"
    sc.queue.set_dead_letter_queue(dlq)
    workers = [sc.start_worker(**OPTS) for _ in range(3)]
    sc.wait_ready(workers)
    # Every job fails its first (and only) attempt; a job caught by a kill runs
    # again (stalled) and then fails, or is failed by the stalled check.
    sc.add(600, data={"fail_first": True}, attempts=1)
    rng = random.Random(11)
    control = redis.Redis.from_url(sc.url)
    kills = 0
    try:
        while not sc.finished() and kills < 6:
            time.sleep(0.4)  # the fault schedule
            if kills % 2:
                control.client_kill_filter(_type="normal", skipme=True)
            else:
                rng.choice([w for w in sc.workers if w.alive()]).kill()
                sc.start_worker(**OPTS)
            kills += 1
        sc.wait_finished(90)
    finally:
        control.close()
    sc.check(allow_duplicates=True)

    failed = {m.decode() for m in sc.client.zrange(f"bull:{sc.queue_name}:failed", 0, -1)}
    entries = Counter(dead_letter_ids(sc.client, dlq))
    assert failed == set(sc.added), "every job ends failed"
    assert set(entries) == failed, "a failed job without a dead letter, or the reverse"
    assert max(entries.values()) == 1, "a job dead-lettered twice"
    stalled = sum(1 for job_id in sc.added if int(sc.client.hget(sc.base + job_id, "stc") or 0))
    print(f"\nCHAOS dead_letters: kills={kills} stalled={stalled} entries={len(entries)}")
    assert kills >= 3, "the storm ended before it began"
