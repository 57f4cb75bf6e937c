"""Job schedulers (repeatable jobs): ``upsert_job_scheduler``, ``add(repeat=...)``,
``remove_job_scheduler``, ``get_job_scheduler(s)``, and what a worker does with
them, against a real Redis.

A scheduler always has exactly one pending iteration, the job
``repeat:<id>:<ms>``; the worker that takes an iteration creates the next one
before running it. "Pending" below means not started yet (waiting, delayed or
prioritized): while an iteration runs, its successor already waits, as in
BullMQ. Nothing sleeps to synchronise: tests wait for conditions with
deadlines (``wait_for``); the only deliberate waits are the scenario itself
(a downtime, or "no further run happens during the next periods").
Periods are short (0.25-0.5 s) so the file runs fast; timing bounds are
tolerant, counts are exact.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from _worker_helpers import REPO, subprocess_env, wait_for

from pyqueue import AsyncQueue, InvalidJobOptionsError, Job, Queue, Worker
from pyqueue._cron import next_after
from pyqueue.testing import TimeTravel, assert_enqueued, run_until_idle_async


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> AsyncIterator[AsyncQueue]:
    q = AsyncQueue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        await q.close()


# ms of slack between Redis' clock and pyqueue's estimate of it (synced, not read per call)
SKEW = 50


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def redis_ms(r: redis.Redis) -> int:
    sec, usec = r.time()
    return int(sec) * 1000 + int(usec) // 1000


def iteration_ms(job_id: str) -> int:
    return int(job_id.rsplit(":", 1)[1])


def gaps(values: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(values)]


def pending_iterations(r: redis.Redis, queue_name: str, sid: str) -> list[str]:
    """Ids of the scheduler's iterations not started yet, read atomically."""
    base = f"bull:{queue_name}:"
    pipe = r.pipeline(transaction=True)
    pipe.lrange(base + "wait", 0, -1)
    pipe.zrange(base + "delayed", 0, -1)
    pipe.zrange(base + "prioritized", 0, -1)
    wait, delayed, prioritized = pipe.execute()
    prefix = f"repeat:{sid}:"
    return [text(j) for j in [*wait, *delayed, *prioritized] if text(j).startswith(prefix)]


def scheduler_keys(r: redis.Redis, queue_name: str, sid: str) -> list[str]:
    """The scheduler's own keys (the ``repeat`` zset and its ``repeat:<id>`` hash)."""
    base = f"bull:{queue_name}:"
    return [k for k in (base + "repeat", base + f"repeat:{sid}") if r.exists(k)]


def stream(r: redis.Redis, queue_name: str) -> list[dict[str, str]]:
    return [{text(k): text(v) for k, v in fields.items()}
            for _, fields in r.xrange(f"bull:{queue_name}:events")]


class Runs:
    """A processor recording every run: (monotonic start, job id, name, data, attempt)."""

    def __init__(self, fail_first_attempt: bool = False, fail_ids: tuple[int, ...] = ()) -> None:
        self.runs: list[tuple[float, str, str, Any, int]] = []
        self.fail_first_attempt = fail_first_attempt
        self.fail_ids = fail_ids

    async def __call__(self, job: Job) -> Any:
        self.runs.append((time.monotonic(), job.id, job.name, job.data, job.attempts_made))
        if self.fail_first_attempt and job.attempts_made == 0:
            raise RuntimeError("first attempt fails")
        if len(self.runs) in self.fail_ids:
            raise RuntimeError(f"run {len(self.runs)} fails")
        return {"n": len(self.runs)}

    @property
    def ids(self) -> list[str]:
        return [run[1] for run in self.runs]

    @property
    def starts(self) -> list[float]:
        return [run[0] for run in self.runs]


def make_worker(queue_name: str, processor: Any, redis_url: str, **options: Any) -> Worker:
    options.setdefault("shutdown_grace", 2)
    return Worker(queue_name, processor, connection=redis_url, **options)


class PendingWatch:
    """Polls the number of pending iterations in the background; records the maximum."""

    def __init__(self, r: redis.Redis, queue_name: str, sid: str) -> None:
        self.r, self.queue_name, self.sid = r, queue_name, sid
        self.samples: list[int] = []
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        while True:
            n = len(await asyncio.to_thread(pending_iterations, self.r, self.queue_name,
                                            self.sid))
            self.samples.append(n)
            await asyncio.sleep(0.005)

    def __enter__(self) -> PendingWatch:
        self._task = asyncio.get_running_loop().create_task(self._poll())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


# --------------------------------------------------------------------------- every


async def test_every_scheduler_runs_repeatedly_with_one_pending_iteration(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    every = 0.25
    runs = Runs()
    before = redis_ms(redis_client)
    first = await queue.upsert_job_scheduler("tick", every=every)
    assert first.id.startswith("repeat:tick:")
    assert before - SKEW <= iteration_ms(first.id) <= redis_ms(redis_client) + SKEW  # now
    assert pending_iterations(redis_client, queue_name, "tick") == [first.id]
    assert await queue.get_job_state(first.id) == "waiting"

    w = make_worker(queue_name, runs, redis_url)
    with PendingWatch(redis_client, queue_name, "tick") as watch:
        try:
            await wait_for(lambda: len(runs.runs) >= 5, 10, "5 iterations")
        finally:
            await w.close()
        await wait_for(lambda: len(watch.samples) >= 20, 5, "pending samples")
    assert max(watch.samples) <= 1, watch.samples
    assert pending_iterations(redis_client, queue_name, "tick") != []

    ids = runs.ids[:5]
    assert ids[0] == first.id
    assert len(set(ids)) == 5
    slots = [iteration_ms(i) for i in ids]
    assert gaps(slots) == [250] * 4
    elapsed = runs.starts[4] - runs.starts[0]
    assert 0.75 <= elapsed <= 1.8, elapsed
    # after the worker stopped: exactly one iteration is waiting for the next worker
    assert len(pending_iterations(redis_client, queue_name, "tick")) == 1
    info = await queue.get_job_scheduler("tick")
    assert info is not None
    assert info["iteration_count"] == len(runs.runs) + 1


async def test_limit_stops_after_exactly_that_many_runs(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    runs = Runs()
    await queue.upsert_job_scheduler("lim", every=0.2, limit=3)
    w = make_worker(queue_name, runs, redis_url)
    try:
        await wait_for(lambda: len(runs.runs) >= 3, 10, "3 iterations")
        await wait_for(lambda: pending_iterations(redis_client, queue_name, "lim") == [], 5,
                       "no pending iteration after the limit")
        await asyncio.sleep(0.6)  # three more periods: nothing else may run
    finally:
        await w.close()
    assert len(runs.runs) == 3
    assert pending_iterations(redis_client, queue_name, "lim") == []
    counts = await queue.get_job_counts()
    assert counts["completed"] == 3
    assert sum(counts.values()) == 3


async def test_end_date_stops_the_schedule(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    runs = Runs()
    now = redis_ms(redis_client)
    end_ms = now + 750
    first = await queue.upsert_job_scheduler("end", every=0.5, end_date=end_ms / 1000)
    t0 = iteration_ms(first.id)
    w = make_worker(queue_name, runs, redis_url)
    try:
        await wait_for(lambda: len(runs.runs) >= 3, 10, "3 iterations")
        await wait_for(lambda: pending_iterations(redis_client, queue_name, "end") == [], 5,
                       "no pending iteration after the end date")
        await asyncio.sleep(1.0)  # two more periods: nothing else may run
    finally:
        await w.close()
    # slots t0, t0+500 (before the end date), and t0+1000: the iteration created by
    # the run at t0+500, which still was before the end date (BullMQ does the same).
    assert [iteration_ms(i) for i in runs.ids] == [t0, t0 + 500, t0 + 1000]
    assert iteration_ms(runs.ids[1]) < end_ms < iteration_ms(runs.ids[2])


async def test_start_date_in_the_future_delays_the_first_run(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    runs = Runs()
    start_ms = redis_ms(redis_client) + 1200
    start = datetime.fromtimestamp(start_ms / 1000, tz=timezone.utc)
    first = await queue.upsert_job_scheduler("later", every=0.3, start_date=start)
    assert first.id == f"repeat:later:{start_ms}"
    assert await queue.get_job_state(first.id) == "delayed"
    w = make_worker(queue_name, runs, redis_url)
    t_upsert = time.monotonic()
    try:
        await wait_for(lambda: len(runs.runs) >= 2, 10, "2 iterations")
    finally:
        await w.close()
    assert runs.ids[0] == first.id
    assert runs.starts[0] - t_upsert >= 1.0
    assert iteration_ms(runs.ids[1]) == start_ms + 300


async def test_immediately_with_a_cron_pattern_runs_now_then_on_the_pattern(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    runs = Runs()
    before = redis_ms(redis_client)
    first = await queue.upsert_job_scheduler("imm", pattern="*/2 * * * * *", immediately=True)
    now_slot = iteration_ms(first.id)
    assert before - SKEW <= now_slot <= redis_ms(redis_client) + SKEW
    assert await queue.get_job_state(first.id) == "waiting"
    w = make_worker(queue_name, runs, redis_url)
    try:
        await wait_for(lambda: len(runs.runs) >= 2, 10, "2 iterations")
    finally:
        await w.close()
    second = iteration_ms(runs.ids[1])
    assert second % 2000 == 0
    assert second == next_after("*/2 * * * * *", None, now_slot)


async def test_cron_scheduler_without_immediately_waits_for_the_pattern(
        queue: AsyncQueue, redis_client: redis.Redis) -> None:
    before = redis_ms(redis_client)
    job = await queue.upsert_job_scheduler("daily", pattern="0 9 * * *", tz="Europe/Berlin")
    assert iteration_ms(job.id) == next_after("0 9 * * *", "Europe/Berlin", before)
    assert await queue.get_job_state(job.id) == "delayed"
    assert job.opts["repeat"] == {"pattern": "0 9 * * *", "tz": "Europe/Berlin", "count": 1}


async def test_a_daily_cron_schedule_runs_day_after_day_by_time_travel(
        redis_url: str, queue_name: str, queue: AsyncQueue) -> None:
    # pyqueue.testing's time control: no waiting for 09:00, the real worker runs it.
    runs: list[str] = []
    await queue.upsert_job_scheduler("daily", pattern="0 9 * * *", tz="Europe/Berlin",
                                     template={"name": "digest", "data": {"kind": "daily"}})
    travel = TimeTravel(queue)
    for day in range(1, 4):
        (pending,) = await assert_enqueued(queue, "digest", {"kind": "daily"},
                                           states=["delayed"])
        assert await travel.advance(timedelta(days=1)) == [pending.id]
        await run_until_idle_async(queue_name, lambda job: runs.append(job.id),
                                   connection=redis_url)
        assert runs[-1] == pending.id and len(runs) == day
    assert len(set(runs)) == 3  # three different iterations, one a day


async def test_template_name_data_and_opts_apply_to_every_iteration(
        redis_url: str, queue_name: str, queue: AsyncQueue) -> None:
    runs = Runs(fail_first_attempt=True)
    await queue.upsert_job_scheduler(
        "tpl", every=0.25, limit=2,
        template={"name": "report", "data": {"kind": "daily"},
                  "opts": {"attempts": 3, "backoff": {"type": "fixed", "delay": 0.05}}})
    finished: list[Job] = []
    w = make_worker(queue_name, runs, redis_url)
    w.on("completed", lambda job, result: finished.append(job))
    try:
        await wait_for(lambda: len(finished) >= 2, 10, "2 iterations completed")
    finally:
        await w.close()
    assert len(runs.runs) == 4  # each iteration: a failed first attempt, then success
    for _, job_id, name, data, _ in runs.runs:
        assert job_id.startswith("repeat:tpl:")
        assert (name, data) == ("report", {"kind": "daily"})
    for job in finished:
        stored = await queue.get_job(job.id)
        assert stored is not None
        assert stored.attempts_made == 2
        assert stored.opts["attempts"] == 3
        assert stored.opts["backoff"] == {"type": "fixed", "delay": 50}
    assert len({job.id for job in finished}) == 2


async def test_a_failing_iteration_does_not_stop_the_schedule(
        redis_url: str, queue_name: str, queue: AsyncQueue) -> None:
    runs = Runs(fail_ids=(1,))
    await queue.upsert_job_scheduler("flaky", every=0.2)
    w = make_worker(queue_name, runs, redis_url)
    try:
        await wait_for(lambda: len(runs.runs) >= 3, 10, "3 iterations")
    finally:
        await w.close()
    assert await queue.get_job_state(runs.ids[0]) == "failed"
    assert await queue.get_job_state(runs.ids[1]) == "completed"
    failed = await queue.get_job(runs.ids[0])
    assert failed is not None and failed.failed_reason == "run 1 fails"


# --------------------------------------------------------------------------- upsert again


async def test_upserting_the_same_id_again_keeps_one_pending_iteration(
        queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    a = await queue.upsert_job_scheduler("s", pattern="0 9 * * *")
    b = await queue.upsert_job_scheduler("s", pattern="0 9 * * *")
    assert a.id == b.id
    assert pending_iterations(redis_client, queue_name, "s") == [a.id]

    before = redis_ms(redis_client)
    c = await queue.upsert_job_scheduler("s", pattern="0 10 * * *",
                                         template={"name": "ten", "data": {"v": 2}})
    assert c.id == f"repeat:s:{next_after('0 10 * * *', None, before)}"
    assert pending_iterations(redis_client, queue_name, "s") == [c.id]
    assert await queue.get_job(a.id) is None
    assert (c.name, c.data) == ("ten", {"v": 2})
    info = await queue.get_job_scheduler("s")
    assert info is not None
    assert (info["pattern"], info["name"], info["iteration_count"]) == ("0 10 * * *", "ten", 1)
    assert len(await queue.get_job_schedulers()) == 1


async def test_upsert_changing_every_takes_effect_with_a_running_worker(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    runs = Runs()
    await queue.upsert_job_scheduler("chg", every=5)
    w = make_worker(queue_name, runs, redis_url)
    try:
        await wait_for(lambda: len(runs.runs) >= 1, 10, "first iteration")
        # the next one is 5 s away; a new period of 0.25 s takes effect now
        await queue.upsert_job_scheduler("chg", every=0.25)
        await wait_for(lambda: len(runs.runs) >= 5, 10, "iterations at the new period")
    finally:
        await w.close()
    # the changed period starts now; later slots are on the new period's grid (the
    # scheduler's offset is kept, as BullMQ keeps it), so the first gap may be shorter
    slots = [iteration_ms(i) for i in runs.ids[1:5]]
    assert 0 < slots[1] - slots[0] <= 250
    assert gaps(slots[1:]) == [250, 250]
    assert runs.starts[4] - runs.starts[0] < 3
    assert len(set(runs.ids)) == len(runs.ids)
    assert len(pending_iterations(redis_client, queue_name, "chg")) == 1


_REGISTER = """
import sys, redis
from pyqueue import Queue
url, name, go = sys.argv[1], sys.argv[2], sys.argv[3]
r = redis.Redis.from_url(url)
r.blpop(go + ':start', 30)
r.rpush(go + ':start', 'x')  # pass the start signal on
with Queue(name, connection=url) as q:
    n = 0
    while not r.exists(go + ':stop'):
        q.upsert_job_scheduler('shared', every=0.3, template={'name': 'beat'})
        n += 1
        if n == 1:
            r.incr(go + ':registered')  # the test stops nobody before this
print(n)
"""


async def test_many_processes_registering_the_same_schedule_create_one_job_per_slot(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    runs = Runs()
    go = f"test:{queue_name}"
    procs = [subprocess.Popen([sys.executable, "-c", _REGISTER, redis_url, queue_name, go],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=subprocess_env(), cwd=str(REPO), text=True)
             for _ in range(8)]
    w = make_worker(queue_name, runs, redis_url)
    try:
        with PendingWatch(redis_client, queue_name, "shared") as watch:
            redis_client.rpush(go + ":start", "x")
            await wait_for(lambda: len(runs.runs) >= 4, 20, "4 iterations while registering")
            await wait_for(lambda: int(redis_client.get(go + ":registered") or 0) == len(procs),
                           30, "every process registering at least once")
            redis_client.set(go + ":stop", 1)
            outs = [await asyncio.to_thread(p.communicate, timeout=30) for p in procs]
        for p, (out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err
            assert int(out.strip()) >= 1
        await wait_for(lambda: len(runs.runs) >= 6, 10, "2 more iterations")
    finally:
        await w.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    ids = runs.ids
    assert len(ids) == len(set(ids)), ids
    slots = [iteration_ms(i) for i in ids]
    assert slots == sorted(slots)
    assert len(set(slots)) == len(slots)
    assert all(g % 300 == 0 and g >= 300 for g in gaps(slots)), slots
    assert max(watch.samples) <= 1
    assert len(pending_iterations(redis_client, queue_name, "shared")) == 1
    assert [s["id"] for s in await queue.get_job_schedulers()] == ["shared"]


async def test_missed_slots_after_downtime_are_skipped_not_replayed(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    every_ms = 300
    first = await queue.upsert_job_scheduler("down", every=every_ms / 1000)
    t0 = iteration_ms(first.id)
    # downtime: no worker for more than 3 slots
    await wait_for(lambda: redis_ms(redis_client) > t0 + 3 * every_ms + 100, 5, "downtime")
    runs = Runs()
    w = make_worker(queue_name, runs, redis_url)
    picked_up = redis_ms(redis_client)
    try:
        await wait_for(lambda: len(runs.runs) >= 4, 10, "4 iterations after the downtime")
    finally:
        await w.close()
    assert runs.ids[0] == first.id  # the one missed iteration runs once
    slots = [iteration_ms(i) for i in runs.ids[:4]]
    # the next slot is the first one on the grid after the pickup: no replay of the
    # 3 missed slots
    assert picked_up < slots[1] <= picked_up + every_ms + 200
    assert (slots[1] - t0) % every_ms == 0
    assert gaps(slots[1:]) == [every_ms] * 2
    # not a burst: within the first period after the first run at most 1 extra run
    in_first_period = [s for s in runs.starts if s < runs.starts[0] + every_ms / 1000 - 0.02]
    assert len(in_first_period) <= 2
    # Start times follow the grid (checked exactly above) plus each pickup's
    # latency: one late pickup makes the next period look short by as much.
    periods = [b - a for a, b in itertools.pairwise(runs.starts[1:4])]
    assert all(0.1 <= p <= 0.7 for p in periods), periods


# --------------------------------------------------------------------------- remove, get


async def test_remove_job_scheduler_removes_the_pending_iteration_and_stops(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    runs = Runs()
    await queue.upsert_job_scheduler("rm", every=0.25)
    w = make_worker(queue_name, runs, redis_url)
    try:
        await wait_for(lambda: len(runs.runs) >= 2, 10, "2 iterations")
        await wait_for(lambda: pending_iterations(redis_client, queue_name, "rm"), 5,
                       "a pending iteration")
        pending = pending_iterations(redis_client, queue_name, "rm")
        assert await queue.remove_job_scheduler("rm") is True
        n = len(runs.runs)
        await asyncio.sleep(0.75)  # three periods: nothing may run any more
    finally:
        await w.close()
    assert len(runs.runs) <= n + 1  # at most an iteration that had already started
    assert pending[0] not in runs.ids
    assert pending_iterations(redis_client, queue_name, "rm") == []
    assert await queue.get_job(pending[0]) is None
    assert scheduler_keys(redis_client, queue_name, "rm") == []
    assert await queue.get_job_scheduler("rm") is None
    assert await queue.get_job_schedulers() == []
    assert await queue.remove_job_scheduler("rm") is False


async def test_remove_of_a_delayed_iteration_emits_removed(
        queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    job = await queue.upsert_job_scheduler("d", pattern="0 9 * * *")
    assert await queue.remove_job_scheduler("d") is True
    assert await queue.get_job_state(job.id) == "unknown"
    removed = [e for e in stream(redis_client, queue_name) if e["event"] == "removed"]
    assert removed == [{"event": "removed", "jobId": job.id, "prev": "delayed"}]
    assert await queue.remove_job_scheduler("d") is False
    assert await queue.remove_job_scheduler("never-existed") is False


async def test_get_job_scheduler_fields(queue: AsyncQueue, redis_client: redis.Redis) -> None:
    now = redis_ms(redis_client)
    start = datetime.fromtimestamp((now + 3_600_000) / 1000, tz=timezone.utc)
    end = start + timedelta(hours=1)
    job = await queue.upsert_job_scheduler(
        "full", pattern="0 * * * *", tz="Europe/Berlin", limit=5, start_date=start,
        end_date=end, template={"name": "hourly", "data": {"a": 1}, "opts": {"attempts": 2}})
    info = await queue.get_job_scheduler("full")
    assert info is not None
    assert info["id"] == "full"
    assert info["name"] == "hourly"
    assert info["pattern"] == "0 * * * *"
    assert info["every"] is None
    assert info["tz"] == "Europe/Berlin"
    assert info["limit"] == 5
    assert info["start_date"] == start.replace(microsecond=start.microsecond // 1000 * 1000)
    assert info["end_date"] == end.replace(microsecond=end.microsecond // 1000 * 1000)
    assert info["iteration_count"] == 1
    assert info["next"] == datetime.fromtimestamp(iteration_ms(job.id) / 1000, tz=timezone.utc)
    assert info["next"] >= start.replace(microsecond=0)
    assert info["next"].minute == 0 and info["next"].second == 0
    assert info["template"]["data"] == {"a": 1}
    assert info["template"]["opts"]["attempts"] == 2

    await queue.upsert_job_scheduler("ev", every=timedelta(seconds=90))
    ev = await queue.get_job_scheduler("ev")
    assert ev is not None
    assert (ev["every"], ev["pattern"], ev["tz"], ev["limit"]) == (90, None, None, None)
    assert (ev["start_date"], ev["end_date"], ev["name"]) == (None, None, "ev")
    assert {s["id"] for s in await queue.get_job_schedulers()} == {"full", "ev"}
    assert await queue.get_job_scheduler("missing") is None


async def test_template_opts_read_back_in_the_form_they_were_given(queue: AsyncQueue) -> None:
    opts = {"backoff": {"type": "fixed", "delay": 0.05}, "remove_on_complete": True}
    await queue.upsert_job_scheduler("rt", every=60, template={"opts": opts})
    info = await queue.get_job_scheduler("rt")
    assert info is not None
    assert info["template"]["opts"] == opts
    await queue.upsert_job_scheduler("rt", every=60, template=info["template"])


def test_sync_queue_scheduler_methods(redis_url: str, queue_name: str,
                                      redis_client: redis.Redis) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        job = q.upsert_job_scheduler("sync", every=10, template={"data": {"s": 1}})
        assert job.id.startswith("repeat:sync:")
        assert job.data == {"s": 1}
        assert [s["id"] for s in q.get_job_schedulers()] == ["sync"]
        info = q.get_job_scheduler("sync")
        assert info is not None and info["every"] == 10
        assert q.remove_job_scheduler("sync") is True
        assert q.get_job_schedulers() == []
        assert pending_iterations(redis_client, queue_name, "sync") == []


# --------------------------------------------------------------------------- add(repeat=)


async def test_add_with_repeat_is_a_scheduler(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    job = await queue.add("ping", {"host": "a"}, repeat={"every": 0.2, "limit": 2},
                          job_id="pinger", attempts=2)
    assert job.id.startswith("repeat:pinger:")
    again = await queue.add("ping", {"host": "a"}, repeat={"every": 0.2, "limit": 2},
                            job_id="pinger", attempts=2)
    assert again.id == job.id  # same scheduler, same slot: still one pending iteration
    assert pending_iterations(redis_client, queue_name, "pinger") == [job.id]
    info = await queue.get_job_scheduler("pinger")
    assert info is not None
    assert (info["name"], info["every"], info["limit"]) == ("ping", 0.2, 2)
    assert info["template"]["data"] == {"host": "a"}

    runs = Runs()
    w = make_worker(queue_name, runs, redis_url)
    try:
        await wait_for(lambda: len(runs.runs) >= 2, 10, "2 iterations")
        await wait_for(lambda: pending_iterations(redis_client, queue_name, "pinger") == [], 5,
                       "limit reached")
    finally:
        await w.close()
    assert len(runs.runs) == 2
    assert all(r[2:4] == ("ping", {"host": "a"}) for r in runs.runs)
    for job_id in runs.ids:
        stored = await queue.get_job(job_id)
        assert stored is not None and stored.opts["attempts"] == 2


async def test_add_with_repeat_without_job_id_keys_by_name_and_pattern(
        queue: AsyncQueue) -> None:
    a = await queue.add("nightly", {"n": 1}, repeat={"pattern": "0 3 * * *"})
    b = await queue.add("nightly", {"n": 2}, repeat={"pattern": "0 3 * * *"})
    c = await queue.add("nightly", {"n": 3}, repeat={"pattern": "0 4 * * *"})
    assert a.id == b.id != c.id
    schedulers = await queue.get_job_schedulers()
    assert len(schedulers) == 2
    by_pattern = {s["pattern"]: s for s in schedulers}
    assert by_pattern["0 3 * * *"]["template"]["data"] == {"n": 2}  # the upsert replaced it
    assert by_pattern["0 4 * * *"]["name"] == "nightly"


# --------------------------------------------------------------------------- stalls


async def test_a_stalled_scheduler_iteration_is_put_back_not_failed(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    base = f"bull:{queue_name}:"
    iteration = await queue.upsert_job_scheduler("st", every=60)
    plain = await queue.add("plain", {"p": 1})
    # a worker took both and died: active, no lock
    for job_id in (iteration.id, plain.id):
        assert redis_client.lrem(base + "wait", 1, job_id) == 1
        redis_client.lpush(base + "active", job_id)
    runs = Runs()
    w = make_worker(queue_name, runs, redis_url, stalled_interval=0.2, max_stalled_count=0)
    try:
        await wait_for(lambda: iteration.id in runs.ids, 10, "the iteration to run again")
        async def plain_failed() -> bool:
            return await queue.get_job_state(plain.id) == "failed"
        await wait_for(plain_failed, 10, "the plain job to fail for stalling")

        async def iteration_completed() -> bool:
            return await queue.get_job_state(iteration.id) == "completed"
        await wait_for(iteration_completed, 10, "the iteration to complete")
    finally:
        await w.close()
    assert plain.id not in runs.ids
    failed = await queue.get_job(plain.id)
    assert failed is not None and "stalled" in (failed.failed_reason or "")
    done = await queue.get_job(iteration.id)
    assert done is not None and done.failed_reason is None
    assert runs.ids.count(iteration.id) == 1
    # the schedule went on: one pending iteration, the next slot
    assert pending_iterations(redis_client, queue_name, "st") == [
        f"repeat:st:{iteration_ms(iteration.id) + 60_000}"]


# --------------------------------------------------------------------------- validation


def _future(seconds: float) -> float:
    return time.time() + seconds


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"pattern": "* * * * *", "every": 1}, "pattern"),
    ({}, "pattern"),
    ({"pattern": "0 9 * * *", "tz": "Mars/Olympus"}, "tz"),
    ({"pattern": "0 9 * * *", "tz": ""}, "tz"),
    ({"every": 1, "tz": "Europe/Berlin"}, "tz"),
    ({"pattern": "61 * * * *"}, "pattern"),
    ({"pattern": "* * *"}, "pattern"),
    ({"every": 0}, "every"),
    ({"every": -1}, "every"),
    ({"every": "1s"}, "every"),
    ({"every": 1, "limit": 0}, "limit"),
    ({"every": 1, "limit": -2}, "limit"),
    ({"every": 1, "limit": 1.5}, "limit"),
    ({"every": 1, "limit": True}, "limit"),
    ({"every": 1, "start_date": _future(100), "end_date": _future(50)}, "end_date"),
    ({"every": 1, "start_date": "tomorrow"}, "start_date"),
    ({"every": 1, "immediately": "yes"}, "immediately"),
    ({"every": 1, "template": {"name": "x", "job": 1}}, "template"),
    ({"every": 1, "template": {"opts": {"job_id": "fixed"}}}, "job_id"),
    ({"every": 1, "template": {"opts": {"delay": 5}}}, "delay"),
    ({"every": 1, "template": {"opts": {"repeat": {"every": 1}}}}, "repeat"),
    ({"every": 1, "template": {"opts": {"bogus": 1}}}, "bogus"),
    ({"every": 1, "template": {"opts": {"attempts": 0}}}, "attempts"),
    ({"every": 1, "template": {"name": 5}}, "name"),
    ({"every": 1, "template": {"data": {1, 2}}}, "data"),
])
async def test_invalid_settings_raise_before_any_write(
        queue: AsyncQueue, queue_name: str, redis_client: redis.Redis,
        kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises((InvalidJobOptionsError, ValueError, TypeError)) as info:
        await queue.upsert_job_scheduler("bad", **kwargs)
    assert words in str(info.value)
    assert redis_client.keys(f"bull:{queue_name}:*") == []


@pytest.mark.parametrize("sid", ["", None, 5, "a\nb"])
async def test_invalid_scheduler_ids_raise(queue: AsyncQueue, queue_name: str,
                                           redis_client: redis.Redis, sid: Any) -> None:
    with pytest.raises(InvalidJobOptionsError):
        await queue.upsert_job_scheduler(sid, every=1)
    assert redis_client.keys(f"bull:{queue_name}:*") == []


async def test_a_pattern_that_never_matches_raises_invalid_options(
        queue: AsyncQueue, queue_name: str, redis_client: redis.Redis) -> None:
    with pytest.raises(InvalidJobOptionsError) as info:
        await queue.upsert_job_scheduler("feb31", pattern="0 0 31 2 *")
    assert "pattern" in str(info.value)
    assert redis_client.keys(f"bull:{queue_name}:*") == []


@pytest.mark.parametrize("repeat", [
    {"every": 1, "pattern": "* * * * *"},
    {"every": 1, "count": 3},
    {"cron": "* * * * *"},
    "every minute",
])
async def test_add_with_invalid_repeat_raises_before_any_write(
        queue: AsyncQueue, queue_name: str, redis_client: redis.Redis, repeat: Any) -> None:
    with pytest.raises(InvalidJobOptionsError):
        await queue.add("x", {}, repeat=repeat)
    assert redis_client.keys(f"bull:{queue_name}:*") == []
