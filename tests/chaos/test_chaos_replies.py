"""Chaos: error replies that used to wedge a worker, and reserved job ids.

Before the fix, one error reply pyqueue did not map (WRONGTYPE, BUSY, ...)
made the worker re-raise the reply "from" itself; its reconnect check then
walked that one-link cycle forever at 100% CPU, took no more jobs and ignored
SIGTERM. These scenarios inject such replies under load (a queue key of the
wrong type, a Lua script that keeps Redis BUSY) and check that no job is
lost, that the workers log at a bounded rate instead of spinning, that they
still obey SIGTERM, and that they consume again once the fault is gone.

The reserved-id scenario checks that producers cannot create a job whose
hash would land on one of the queue's own keys: ``stalled-check`` used to
switch stalled recovery off for the whole queue while such a job existed.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
import redis
from _worker_helpers import damage_meta
from harness import REAL_TIME, Scenario, max_rate, recovery_bound, wait_until
from test_chaos_faults import BASE_OPTS, BOUND, FaultLoop, report, worker_errors

import pyqueue
from pyqueue import _keys

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

#: Lua that keeps Redis busy (answering BUSY to everyone else) for ARGV[1] µs.
BUSY_SCRIPT = """
local t = redis.call('TIME')
local start = tonumber(t[1]) * 1000000 + tonumber(t[2])
while true do
  t = redis.call('TIME')
  if tonumber(t[1]) * 1000000 + tonumber(t[2]) - start > tonumber(ARGV[1]) then break end
end
return 1
"""


def test_wrongtype_and_busy_replies_under_load(scenario: Scenario) -> None:
    """The queue's ``meta`` hash replaced by a string (WRONGTYPE for every
    worker and producer call: the clock sync reads it) for 0.4 s, and a
    script that keeps Redis BUSY for 0.6 s, alternating every second, while
    2,000 jobs run: nothing lost, no error loop, recovery within the bound."""
    sc = scenario
    control = redis.Redis.from_url(sc.url)
    control.config_set("busy-reply-threshold", 50)  # BUSY after 50 ms of a script
    workers = [sc.start_worker(**BASE_OPTS, concurrency=4, duration=0.005) for _ in range(2)]
    sc.wait_ready(workers)
    producer = sc.produce_in_background(2000, per_batch=10, pause=0.05)
    turn = {"n": 0}

    def fault() -> None:
        turn["n"] += 1
        if turn["n"] % 2:
            repair = damage_meta(control, sc.base)
            time.sleep(0.4)  # the fault's length, not a synchronisation
            repair()
        else:
            control.eval(BUSY_SCRIPT, 0, 600_000)

    faults = FaultLoop(fault, 1.0)
    faults.start()
    try:
        producer.join_checked(90)
    finally:
        faults.stop()
        stopped_at = REAL_TIME()
    recovered = sc.wait_started_after(stopped_at, workers, BOUND + 10, feed=8,
                                      data={"duration": 0.2})
    sc.wait_finished(60)
    # A BUSY spell can outlast a renewal's chance (lock 1 s): a job whose lock
    # expired may run again, counted in its stalled counter (check() verifies
    # every duplicate is so justified).
    result = sc.check(allow_duplicates=True)
    errors = worker_errors(sc)
    texts = " ".join(f"{e.get('err', '')} {e.get('msg', '')}" for e in errors)
    report("error_replies", faults=faults.count, added=len(result.added),
           ambiguous=len(result.ambiguous), duplicates=len(result.duplicates),
           producer_errors=len(producer.errors),
           worker_errors=len(errors), error_rate_max=max_rate([e["t"] for e in errors]),
           recovery_max=max(recovered.values()))
    control.close()
    assert faults.count >= 4 and not faults.errors, faults.errors
    # Idle workers sleep on the marker, and an add during the window fails
    # (its wake-up reads meta): the WRONGTYPE reply reaches a worker or a
    # producer, whichever calls first.
    texts += " ".join(text for _, text in producer.errors)
    assert "WRONGTYPE" in texts or "RedisDataError" in texts, "the fault never reached anyone"
    assert max_rate([e["t"] for e in errors]) <= 50, "an error loop"
    assert max(recovered.values()) <= BOUND


def test_worker_obeys_sigterm_while_every_fetch_fails(scenario: Scenario) -> None:
    """With the queue's ``meta`` damaged (every worker call fails with
    WRONGTYPE), a worker still shuts down on SIGTERM, and another consumes
    every job once the key is repaired."""
    sc = scenario
    control = redis.Redis.from_url(sc.url)
    sc.add(50)
    repair = damage_meta(control, sc.base)
    doomed = sc.start_worker(**BASE_OPTS, concurrency=2)
    sc.wait_ready([doomed])

    def saw_error() -> bool:
        return any(e["pid"] == doomed.pid for e in worker_errors(sc))

    wait_until(saw_error, 20, "the worker to meet the WRONGTYPE reply")
    signalled = time.monotonic()
    doomed.signal(signal.SIGTERM)
    status = doomed.wait_exit(15)
    took = time.monotonic() - signalled
    repair()
    survivor = sc.start_worker(**BASE_OPTS, concurrency=4)
    sc.wait_ready([survivor])
    sc.wait_finished(30)
    result = sc.check(allow_duplicates=False)
    report("sigterm_while_failing", exit_status=status, exit_seconds=took,
           completed=len(result.added))
    control.close()
    assert took < 10, "SIGTERM ignored by a worker whose fetches fail"


def test_reserved_ids_are_refused_and_stalled_recovery_keeps_working(
        scenario: Scenario) -> None:
    """Every reserved id is refused before any write, from several producer
    threads at once while workers run; then a SIGKILLed worker's job is still
    recovered by the stalled check (a job named ``stalled-check`` used to turn
    it off for the whole queue)."""
    sc = scenario
    workers = [sc.start_worker(**BASE_OPTS, concurrency=2, duration=0.01) for _ in range(2)]
    sc.wait_ready(workers)
    before = set(sc.client.keys(sc.base + "*"))
    refused: list[str] = []
    accepted: list[str] = []
    lock = threading.Lock()

    def produce() -> None:
        with pyqueue.Queue(sc.queue_name, connection=sc.url) as queue:
            for job_id in sorted(_keys.RESERVED_JOB_IDS):
                try:
                    queue.add("evil", {}, job_id=job_id)
                except pyqueue.InvalidJobIdError:
                    with lock:
                        refused.append(job_id)
                else:
                    with lock:
                        accepted.append(job_id)

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not accepted, accepted
    assert len(refused) == 4 * len(_keys.RESERVED_JOB_IDS)
    # No job was written under a reserved name (the workers' own keys, such as
    # the stalled check's marker, may come and go meanwhile: not jobs).
    created = set(sc.client.keys(sc.base + "*")) - before
    written = [k for k in created if k.decode().removeprefix(sc.base) in _keys.RESERVED_JOB_IDS
               and sc.client.type(k) == b"hash" and sc.client.hget(k, "name") == b"evil"]
    assert not written, written
    assert not any(sc.client.type(sc.base + job_id) == b"hash"
                   and sc.client.hget(sc.base + job_id, "name") == b"evil"
                   for job_id in _keys.RESERVED_JOB_IDS)

    # Stalled recovery still works: SIGKILL a worker in the middle of a long job.
    victim = workers[0]
    sc.add(6, data={"duration": 0.8})

    def victim_started() -> bool:
        return any(r["ev"] == "start" and r["pid"] == victim.pid for r in sc.records())

    wait_until(victim_started, 20, "the victim to start a job")
    victim.kill()
    killed_at = REAL_TIME()
    took = sc.wait_finished(recovery_bound(BASE_OPTS["lock_duration"],
                                           BASE_OPTS["stalled_interval"]) + 15)
    result = sc.check(allow_duplicates=True)
    report("reserved_ids", refused=len(refused), finished_after_kill=took,
           since_kill=REAL_TIME() - killed_at, duplicates=len(result.duplicates))
