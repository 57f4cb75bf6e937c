"""Fault-injection ("chaos") scenarios: DESIGN.md section 4, proved under faults.

Each scenario runs real worker processes (``worker_app.py``) against a Redis
server of its own, injects one kind of fault on a schedule, waits (by
polling, with deadlines) until every job whose ``add()`` returned is
completed or failed, and then runs the checks of ``harness.py``:

- lost = 0 and unexpected = 0 everywhere; duplicates (a processor run that
  ended well more than once) only where a lock loss was injected, each one
  counted in the job's stalled counter; no job finished twice (fencing);
- each job in exactly one state, no orphan lock, nothing left active;
- where DESIGN.md promises recovery, every worker takes a job again within
  ``lock_duration + 2 * stalled_interval`` plus the reconnect backoff.

Timings are small on purpose (lock 1 s, stalled check 0.5 s) so the whole
suite fits in a few minutes on two cores.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from harness import (
    REAL_TIME,
    Scenario,
    check_states,
    max_rate,
    recovery_bound,
    wait_until,
)
from proxy import FaultProxy

import pyqueue
from pyqueue._server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.chaos]  # chaos: registered in conftest.py

LOCK = 1.0
STALLED = 0.5
BOUND = recovery_bound(LOCK, STALLED)
BASE_OPTS: dict[str, Any] = {"lock_duration": LOCK, "stalled_interval": STALLED}


def report(name: str, **values: Any) -> None:
    """One line of measurements (shown with ``-s``)."""
    shown = " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in values.items())
    print(f"\nCHAOS {name}: {shown}")


class FaultLoop(threading.Thread):
    """Runs ``fault()`` every ``every`` seconds until stopped (the fault schedule)."""

    def __init__(self, fault: Callable[[], Any], every: float) -> None:
        super().__init__(daemon=True, name="fault-loop")
        self.fault = fault
        self.every = every
        self.stop_event = threading.Event()
        self.count = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            try:
                self.fault()
                self.count += 1
            except Exception as exc:
                self.errors.append(repr(exc))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)


def worker_errors(sc: Scenario) -> list[dict[str, Any]]:
    return [r for r in sc.records() if r["ev"] == "error"]


def log_times(sc: Scenario, since: float, until: float) -> list[float]:
    """Times of the workers' log lines (``<time> LEVEL message``) in a window."""
    times = []
    for worker in sc.workers:
        for line in worker.log().splitlines():
            head = line.split(" ", 1)[0]
            try:
                t = float(head)
            except ValueError:
                continue
            if since <= t <= until:
                times.append(t)
    return times


# --------------------------------------------------------------------------- workers die


def test_kill9_storm(scenario: Scenario) -> None:
    """SIGKILL a random one of 3 workers every 0.6 s while 2,000 jobs run."""
    sc = scenario
    opts = {**BASE_OPTS, "concurrency": 4, "duration": 0.02}
    workers = [sc.start_worker(**opts) for _ in range(3)]
    sc.wait_ready(workers)
    sc.add(2000)
    rng = random.Random(7)
    killed = []
    begun = time.monotonic()
    while not sc.finished() and len(killed) < 10:
        time.sleep(0.6)  # the fault schedule
        victim = rng.choice([w for w in sc.workers if w.alive()])
        victim.kill()
        killed.append(victim.pid)
        sc.start_worker(**opts)
    took = sc.wait_finished(90)
    result = sc.check(allow_duplicates=True)
    records = sc.records()
    interrupted = {r["id"] for r in records if r["ev"] == "start" and r["pid"] in killed} - {
        r["id"] for r in records if r["ev"] == "end" and r["pid"] in killed}
    stalled = sum(1 for job_id in sc.added
                  if int(sc.client.hget(sc.base + job_id, "stc") or 0) > 0)
    report("kill9_storm", kills=len(killed), interrupted=len(interrupted), stalled=stalled,
           duplicates=len(result.duplicates), failed=len(result.failed),
           seconds=time.monotonic() - begun, drain_after_storm=took)
    assert len(killed) >= 4, "the storm ended before it began"
    assert stalled, "no kill hit a job in flight"


@pytest.mark.parametrize("mode", ["finishes_in_grace", "hands_back"])
def test_sigterm_mid_job(scenario: Scenario, mode: str) -> None:
    """SIGTERM while jobs run: they finish within the grace, or go back to wait
    (no attempt used, not counted as stalled) and another worker runs them."""
    sc = scenario
    grace = 5.0 if mode == "finishes_in_grace" else 0.2
    a = sc.start_worker(**BASE_OPTS, concurrency=2, shutdown_grace=grace)
    sc.wait_ready([a])
    ids = sc.add(2, data={"duration": 1.5})
    wait_until(lambda: {r["id"] for r in sc.records() if r["ev"] == "start"} >= set(ids),
               10, "both jobs to start")
    begun = time.monotonic()
    a.signal(signal.SIGTERM)
    code = a.wait_exit(grace + 5)
    exit_after = time.monotonic() - begun
    assert code == 0, a.log()
    assert "worker exited cleanly" in a.log()
    if mode == "finishes_in_grace":
        assert sc.finished(ids)
        assert exit_after < 1.5 + 2
        for job_id in ids:
            assert sc.queue.get_job(job_id).return_value == {"pid": a.pid}
    else:
        assert exit_after < grace + 2
        assert not sc.finished(ids)
        problems = check_states(sc.client, sc.base, ids, expect_idle=True)
        assert not problems, problems
        assert sc.client.llen(sc.base + "wait") == 2
        b = sc.start_worker(**BASE_OPTS, concurrency=2)
        sc.wait_finished(15, ids)
        for job_id in ids:
            job = sc.queue.get_job(job_id)
            assert job.return_value == {"pid": b.pid}
            assert job.stalled_counter == 0
            assert job.attempts_made == 1
            assert job.attempts_started == 1  # the handed-back start was undone
    sc.check(allow_duplicates=False)
    report(f"sigterm_{mode}", exit_seconds=exit_after)


def test_sigstop_worker_past_its_lock_is_fenced(scenario: Scenario) -> None:
    """A worker frozen (SIGSTOP) past its lock: another worker takes the job
    over; the zombie, thawed, finishes late and Redis refuses its write."""
    sc = scenario
    a = sc.start_worker(**BASE_OPTS)
    sc.wait_ready([a])
    (job_id,) = sc.add(1, data={"duration": 1.5})
    wait_until(lambda: any(r["ev"] == "start" and r["pid"] == a.pid for r in sc.records()),
               10, "the job to start on A")
    a.signal(signal.SIGSTOP)
    stopped_at = REAL_TIME()
    b = sc.start_worker(**BASE_OPTS)
    wait_until(lambda: any(r["ev"] == "start" and r["pid"] == b.pid for r in sc.records()),
               BOUND + 10, "B to take the stalled job over", on_timeout=sc.debug)
    takeover = next(r["t"] for r in sc.records()
                    if r["ev"] == "start" and r["pid"] == b.pid) - stopped_at
    a.signal(signal.SIGCONT)  # A's 1.5 s are long over: it finishes at once
    wait_until(lambda: any(r["ev"] == "end" and r["pid"] == a.pid for r in sc.records()),
               10, "the zombie to finish its run")
    wait_until(lambda: any(r["ev"] == "lock_lost" and r["pid"] == a.pid
                           for r in sc.records()), 10, "the zombie to be told it lost the lock")
    sc.wait_finished(10)
    records = sc.records()
    assert not any(r["ev"] == "completed" and r["pid"] == a.pid for r in records)
    job = sc.queue.get_job(job_id)
    assert job.return_value == {"pid": b.pid}, "the zombie's result was written"
    assert job.stalled_counter == 1
    assert job.attempts_made == 1
    result = sc.check(allow_duplicates=True)
    assert result.duplicates == {job_id: 2}
    report("sigstop_worker", takeover_seconds=takeover, stc=job.stalled_counter)


def test_busy_processor_cannot_starve_lock_renewal(scenario: Scenario) -> None:
    """A processor that hogs the event loop for 3 lock durations keeps its lock:
    another worker's stalled check never takes the job away."""
    sc = scenario
    a = sc.start_worker(**BASE_OPTS)
    sc.wait_ready([a])
    (job_id,) = sc.add(1, data={"duration": 3 * LOCK, "busy": True})
    wait_until(lambda: any(r["ev"] == "start" for r in sc.records()), 10, "the job to start")
    b = sc.start_worker(**BASE_OPTS)  # runs stalled checks meanwhile
    sc.wait_ready([b])
    sc.wait_finished(15)
    job = sc.queue.get_job(job_id)
    assert job.stalled_counter == 0
    assert job.return_value == {"pid": a.pid}
    assert not [r for r in sc.records() if r["ev"] in ("lock_lost", "stalled")]
    sc.check(allow_duplicates=False)


# --------------------------------------------------------------------------- Redis faults


def test_redis_kill9_and_restart_with_aof(make_server: Callable[..., RedisServer],
                                         tmp_path: Path) -> None:
    server = make_server(persistent=True)
    sc = Scenario(server.url, tmp_path)
    try:
        workers = [sc.start_worker(**BASE_OPTS, concurrency=4, duration=0.01)
                   for _ in range(2)]
        sc.wait_ready(workers)
        producer = sc.produce_in_background(1500, per_batch=20, pause=0.03)
        wait_until(lambda: sc.counts()["completed"] >= 300, 30, "load to build up")
        server.kill()  # the fault: SIGKILL, as a crash
        killed_at = REAL_TIME()
        time.sleep(1.0)  # the outage
        server.restart()
        up_at = REAL_TIME()
        recovered = sc.wait_started_after(up_at, workers, BOUND + 15, feed=8,
                                          data={"duration": 0.2})
        producer.join_checked(60)
        sc.wait_finished(60)
        result = sc.check(allow_duplicates=True)
        report("redis_kill9_aof", recovery_max=max(recovered.values()),
               outage=up_at - killed_at, added=len(result.added),
               ambiguous=len(result.ambiguous), duplicates=len(result.duplicates),
               producer_errors=len(producer.errors))
        assert max(recovered.values()) <= BOUND, recovered
    finally:
        sc.close()


def test_script_flush_every_second(scenario: Scenario) -> None:
    """SCRIPT FLUSH and FUNCTION FLUSH every second under load: the library and
    the scripts reload, nothing is noticed."""
    sc = scenario
    workers = [sc.start_worker(**BASE_OPTS, concurrency=4, duration=0.005) for _ in range(2)]
    sc.wait_ready(workers)
    producer = sc.produce_in_background(2000, per_batch=10, pause=0.03)
    def flush() -> None:
        sc.client.script_flush()
        sc.client.function_flush()

    flusher = FaultLoop(flush, 1.0)
    flusher.start()
    try:
        producer.join_checked(60)
        sc.wait_finished(60)
    finally:
        flusher.stop()
    result = sc.check(allow_duplicates=False)
    errors = worker_errors(sc)
    report("script_flush", flushes=flusher.count, added=len(result.added),
           worker_errors=len(errors), producer_errors=len(producer.errors))
    assert flusher.count >= 4
    assert not producer.errors, producer.errors[:5]
    assert not errors, errors[:5]
    assert not result.ambiguous


def test_client_kill_every_second(scenario: Scenario) -> None:
    """CLIENT KILL of every client every second under load."""
    sc = scenario
    workers = [sc.start_worker(**BASE_OPTS, concurrency=4, duration=0.005) for _ in range(2)]
    sc.wait_ready(workers)
    producer = sc.produce_in_background(2000, per_batch=10, pause=0.03)
    control = redis.Redis.from_url(sc.url)
    killed: list[int] = []
    killer = FaultLoop(lambda: killed.append(
        control.client_kill_filter(_type="normal", skipme=True)), 1.0)
    killer.start()
    try:
        producer.join_checked(60)
        sc.wait_finished(60)
    finally:
        killer.stop()
        stopped_at = REAL_TIME()
        control.close()
    recovered = sc.wait_started_after(stopped_at, workers, BOUND + 10, feed=8,
                                      data={"duration": 0.2})
    sc.wait_finished(30)
    result = sc.check(allow_duplicates=True)
    errors = worker_errors(sc)
    report("client_kill", kills=killer.count, connections_killed=sum(killed),
           added=len(result.added), ambiguous=len(result.ambiguous),
           duplicates=len(result.duplicates),
           worker_errors=len(errors), error_rate_max=max_rate([e["t"] for e in errors]),
           recovery_max=max(recovered.values()))
    assert killer.count >= 4
    assert max_rate([e["t"] for e in errors]) <= 50, "an error loop"
    assert max(recovered.values()) <= BOUND


def test_redis_sigstop_10s_under_load(scenario: Scenario, server: RedisServer) -> None:
    """Redis frozen (SIGSTOP) for 10 s under load: every lock expires meanwhile;
    the workers recover on their own and nothing is lost."""
    sc = scenario
    workers = [sc.start_worker(**BASE_OPTS, concurrency=4, duration=0.01) for _ in range(2)]
    sc.wait_ready(workers)
    producer = sc.produce_in_background(1000, per_batch=10, pause=0.02)
    wait_until(lambda: sc.counts()["completed"] >= 200, 30, "load to build up")
    server.pause()
    try:
        time.sleep(10.0)  # the fault
    finally:
        server.resume()
    resumed_at = REAL_TIME()
    recovered = sc.wait_started_after(resumed_at, workers, BOUND + 15, feed=8,
                                      data={"duration": 0.2})
    producer.join_checked(60)
    sc.wait_finished(60)
    result = sc.check(allow_duplicates=True)
    errors = worker_errors(sc)
    report("redis_sigstop_10s", recovery_max=max(recovered.values()),
           added=len(result.added), ambiguous=len(result.ambiguous),
           duplicates=len(result.duplicates), worker_errors=len(errors),
           slowest_add=max(sc.add_durations))
    assert max(recovered.values()) <= BOUND, recovered
    assert max(sc.add_durations) < 15, "an add hung"
    assert max_rate([e["t"] for e in errors]) <= 50, "an error loop"


@pytest.mark.parametrize("outage", ["killed", "frozen"])
def test_idle_worker_through_outage_longer_than_block_timeout(
        scenario: Scenario, server: RedisServer, outage: str) -> None:
    """Idle workers blocked on an empty queue (block timeout 1 s) through an
    outage longer than that: they take new jobs within the bound afterwards,
    without an error loop or a flood of log lines."""
    sc = scenario
    workers = [sc.start_worker(**BASE_OPTS, drain_delay=1.0) for _ in range(2)]
    sc.wait_ready(workers)
    wait_until(lambda: sum(1 for c in sc.client.client_list() if c.get("cmd") == "bzpopmin")
               >= len(workers), 10, "the workers to block on the marker")
    down_at = REAL_TIME()
    if outage == "killed":
        server.kill()
        time.sleep(4.0)  # the outage: 4 block timeouts
        server.restart()
    else:
        server.pause()
        time.sleep(8.0)  # past the block timeout plus its 5 s margin
        server.resume()
    up_at = REAL_TIME()
    recovered = sc.wait_started_after(up_at, workers, BOUND + 15, feed=4,
                                      data={"duration": 0.3})
    sc.wait_finished(30)
    sc.check(allow_duplicates=False)
    errors = [e["t"] for e in worker_errors(sc)]
    lines = log_times(sc, down_at, up_at + 1)
    report(f"idle_outage_{outage}", recovery_max=max(recovered.values()),
           outage=up_at - down_at, worker_errors=len(errors), log_lines=len(lines),
           log_lines_per_s_max=max_rate(lines), errors_per_s_max=max_rate(errors))
    assert max(recovered.values()) <= BOUND, recovered
    assert max_rate(errors) <= 20, "an error loop"
    # Throttled: at most one line per kind of failure (fetch, block, renewal,
    # stalled check, heartbeat, ...) per worker every 5 s.
    assert max_rate(lines) <= 8 * len(workers), "a flood of log lines"
    assert len(lines) <= 8 * len(workers) * ((up_at - down_at) / 5 + 2), "a flood of log lines"


def test_blackholed_and_dropped_connections_through_a_proxy(scenario: Scenario) -> None:
    """Workers reach Redis through a TCP fault proxy: their connections are reset
    twice, then blackholed for 12 s (longer than the 10 s socket timeout)."""
    sc = scenario
    proxy = FaultProxy(int(sc.url.rsplit(":", 1)[1].split("/")[0])).start()
    try:
        workers = [sc.start_worker(url=proxy.url, **BASE_OPTS, concurrency=4, duration=0.01)
                   for _ in range(2)]
        sc.wait_ready(workers)
        producer = sc.produce_in_background(1000, per_batch=10, pause=0.02)
        wait_until(lambda: sc.counts()["completed"] >= 100, 30, "load to build up")
        dropped = proxy.drop()
        time.sleep(0.5)
        dropped += proxy.drop()
        dropped_at = REAL_TIME()
        recovered_drop = sc.wait_started_after(dropped_at, workers, BOUND + 10, feed=8,
                                               data={"duration": 0.2})
        proxy.blackhole()
        time.sleep(12.0)  # the partition
        proxy.heal()
        healed_at = REAL_TIME()
        recovered = sc.wait_started_after(healed_at, workers, BOUND + 15, feed=8,
                                          data={"duration": 0.2})
        producer.join_checked(60)
        sc.wait_finished(60)
        result = sc.check(allow_duplicates=True)
        errors = worker_errors(sc)
        report("proxy", dropped=dropped, recovery_after_drop=max(recovered_drop.values()),
               recovery_after_blackhole=max(recovered.values()), added=len(result.added),
               duplicates=len(result.duplicates), worker_errors=len(errors))
        assert dropped >= 4
        assert max(recovered_drop.values()) <= BOUND
        assert max(recovered.values()) <= BOUND, recovered
        assert max_rate([e["t"] for e in errors]) <= 50, "an error loop"
    finally:
        proxy.close()


# --------------------------------------------------------------------------- producers


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_add_during_outage_raises_a_typed_error(scenario: Scenario, server: RedisServer,
                                                outage: str) -> None:
    """``Queue.add`` with Redis down or frozen raises ``RedisConnectionError`` in
    bounded time: it never hangs and never reports success."""
    sc = scenario
    sc.add_one()  # connected and warm
    if outage == "stopped":
        server.kill()
    else:
        server.pause()
    begun = time.monotonic()
    try:
        with pytest.raises(pyqueue.RedisConnectionError):
            sc.add_one()
        took = time.monotonic() - begun
    finally:
        if outage == "stopped":
            server.restart()
        else:
            server.resume()
    report(f"add_during_outage_{outage}", seconds=took)
    assert took < 15
    # Afterwards the same Queue works again.
    sc.add_one()


OOM_ERRORS = (pyqueue.RedisStateError, redis.exceptions.OutOfMemoryError)


def fill_until_oom(sc: Scenario, payload: dict[str, Any]) -> tuple[list[str], BaseException]:
    """Add jobs one by one until Redis refuses; returns (ids returned, the error)."""
    returned: list[str] = []
    with pytest.raises(OOM_ERRORS) as info:
        for _ in range(20000):
            returned.append(sc.add_one(data=payload))
    return returned, info.value


@pytest.fixture
def oom_scenario(make_server: Callable[..., RedisServer], tmp_path: Path) -> Any:
    server = make_server(extra_args=["--maxmemory", "2mb"])
    sc = Scenario(server.url, tmp_path)
    try:
        yield sc
    finally:
        sc.close()


def test_oom_add_raises_redis_state_error(oom_scenario: Scenario) -> None:
    """With ``maxmemory`` reached and ``noeviction``, add() raises the typed
    ``pyqueue.RedisStateError`` (DESIGN.md / the issue), not a redis-py class."""
    _, error = fill_until_oom(oom_scenario, {"blob": "x" * 400})
    assert isinstance(error, pyqueue.RedisStateError), type(error)


def test_oom_never_returns_an_id_that_does_not_exist(oom_scenario: Scenario) -> None:
    """Fill Redis (2 MB, noeviction) until add() raises: every id add() returned
    exists, the refused one does not, nothing hangs; once memory is available
    again a new worker processes every returned job."""
    sc = oom_scenario
    payload = {"blob": "x" * 400}
    begun = time.monotonic()
    returned, error = fill_until_oom(sc, payload)
    took = time.monotonic() - begun
    refused = [r["id"] for r in sc.records() if r["ev"] == "add_err"]
    with pytest.raises(OOM_ERRORS):  # bulk adds too
        sc.add(50, tag="b", data=payload)
    pipe = sc.client.pipeline(transaction=False)
    for job_id in returned:
        pipe.exists(sc.base + job_id)
    missing = [job_id for job_id, n in zip(returned, pipe.execute(), strict=True) if not n]
    assert not missing, f"add() returned ids that do not exist: {missing[:10]}"
    assert sc.client.exists(sc.base + refused[0]) == 0
    assert max(sc.add_durations) < 15
    problems = check_states(sc.client, sc.base, returned, expect_idle=True)
    assert not problems, problems[:10]
    sc.client.config_set("maxmemory", "0")
    sc.start_worker(**BASE_OPTS, concurrency=8)
    sc.wait_finished(60)
    result = sc.check(allow_duplicates=False)
    report("oom", accepted=len(returned), seconds_to_oom=took, error=type(error).__name__,
           bulk_ambiguous=len(result.ambiguous))


def test_worker_through_oom_resumes_when_memory_frees(oom_scenario: Scenario) -> None:
    """A worker running while Redis is out of memory (its fetches refused) takes
    the queued jobs once memory is available again."""
    sc = oom_scenario
    returned, _ = fill_until_oom(sc, {"blob": "x" * 400})
    # Keep Redis out of memory: once the producer's buffers are freed, used
    # memory drops a little below the limit, and a fetch would get through.
    used = int(sc.client.info("memory")["used_memory"])
    sc.client.config_set("maxmemory", str(used - 256 * 1024))
    w = sc.start_worker(**BASE_OPTS, concurrency=8)
    sc.wait_ready([w])
    wait_until(lambda: worker_errors(sc), 10, "the worker to hit OOM")
    time.sleep(0.5)  # the outage: a few refused fetches
    sc.client.config_set("maxmemory", "0")
    freed_at = REAL_TIME()
    recovered = sc.wait_started_after(freed_at, [w], BOUND + 5)
    sc.wait_finished(30)
    sc.check(allow_duplicates=False)
    report("oom_worker", recovery=max(recovered.values()), jobs=len(returned))


def test_simulated_failover(make_server: Callable[..., RedisServer], tmp_path: Path) -> None:
    """Workers reach the primary through a virtual address (the proxy). Failover:
    the replica, caught up, is promoted, the old primary demoted, and the
    address moved; every worker takes jobs from the new primary within the bound."""
    a = make_server()
    b = make_server()
    control_a = redis.Redis.from_url(a.url)
    control_b = redis.Redis.from_url(b.url)
    control_b.replicaof("127.0.0.1", a.port)
    wait_until(lambda: control_b.info("replication").get("master_link_status") == "up", 15,
               "the replica to sync")
    proxy = FaultProxy(a.port).start()
    sc = Scenario(proxy.url, tmp_path)
    try:
        workers = [sc.start_worker(**BASE_OPTS, concurrency=4, duration=0.01)
                   for _ in range(2)]
        sc.wait_ready(workers)
        sc.add(600)
        wait_until(lambda: sc.counts()["completed"] >= 100, 30, "load to build up")
        # The failover: no acknowledged write may be lost, so writes pause on A
        # until B has everything.
        control_a.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        target = control_a.info("replication")["master_repl_offset"]
        wait_until(lambda: control_b.info("replication").get("slave_repl_offset", -1)
                   >= target, 5, "the replica to catch up")
        control_b.replicaof("no", "one")
        proxy.retarget(b.port)
        control_a.replicaof("127.0.0.1", b.port)
        control_a.execute_command("CLIENT", "UNPAUSE")
        failover_at = REAL_TIME()
        sc.queue.close()
        sc.queue = pyqueue.Queue(sc.queue_name, connection=b.url)
        sc.client.close()
        sc.client = redis.Redis.from_url(b.url)
        recovered = sc.wait_started_after(failover_at, workers, BOUND + 10, feed=8,
                                          data={"duration": 0.2})
        sc.wait_finished(60)
        result = sc.check(allow_duplicates=True)
        report("failover", recovery_max=max(recovered.values()),
               duplicates=len(result.duplicates))
        assert max(recovered.values()) <= BOUND, recovered
    finally:
        sc.close()
        proxy.close()
        control_a.close()
        control_b.close()


# --------------------------------------------------------------------------- clocks


def test_clock_skew_between_workers_server_time_wins(scenario: Scenario) -> None:
    """Two workers whose clocks are an hour fast and an hour slow: delayed jobs
    and retry backoffs still start on time (the server's), long jobs are not
    declared stalled, and timestamps are the server's."""
    sc = scenario
    skews = (3600.0, -3600.0)
    workers = [sc.start_worker(**BASE_OPTS, concurrency=4, skew=s) for s in skews]
    sc.wait_ready(workers)
    delay = 1.5
    added_at = REAL_TIME()
    delayed = sc.add(20, tag="d", delay=delay)
    retried = sc.add(10, tag="f", data={"fail_first": True}, attempts=2,
                     backoff={"type": "fixed", "delay": 1})
    long_jobs = sc.add(4, tag="l", data={"duration": 2.5 * LOCK})
    sc.wait_finished(30)
    records = sc.records()
    starts = [r for r in records if r["ev"] == "start"]
    early = [r for r in starts if r["id"] in set(delayed) and r["t"] < added_at + delay - 0.05]
    assert not early, f"delayed jobs started early: {early[:5]}"
    late = [r for r in starts if r["id"] in set(delayed) and r["t"] > added_at + delay + 3]
    assert not late, f"delayed jobs started late: {late[:5]}"
    gaps = []
    for job_id in retried:
        fail_end = next(r["t"] for r in records if r["ev"] == "end" and r["id"] == job_id
                        and r["outcome"] == "error")
        second = [r["t"] for r in starts if r["id"] == job_id and r["t"] > fail_end]
        assert second, f"job {job_id} was not retried"
        gaps.append(second[0] - fail_end)
    assert min(gaps) >= 0.95 and max(gaps) < 4, gaps
    for job_id in long_jobs:
        assert sc.queue.get_job(job_id).stalled_counter == 0
    skewed = [r for r in starts if r.get("server_processed_on")
              and abs(int(r["server_processed_on"]) / 1000 - r["t"]) > 5]
    assert not skewed, f"processedOn is a worker's clock, not the server's: {skewed[:3]}"
    assert {r["pid"] for r in starts} == {w.pid for w in workers}, "a worker took nothing"
    sc.check(allow_duplicates=False)
    report("clock_skew", retry_gap_min=min(gaps), retry_gap_max=max(gaps))
