"""Groups against a real Redis: per-group concurrency and rate limits (in one
process and across worker processes), round-robin fairness, ungrouped jobs,
delayed and retried grouped jobs, states and counts, cleanup, BullMQ-format
isolation, un-parking, validation.

No sleeps as synchronisation: processors set events or counters, the test
waits on them (or polls a condition with a deadline). Counts are exact;
timings have tolerant bounds.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import pytest
import redis
from _group_app import GroupApps
from _worker_helpers import max_in_window, wait_event, wait_for

from pyqueue import AsyncQueue, Job, Worker

EARLY = 0.015  # local clock vs. Redis' whole milliseconds


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> Any:
    q = AsyncQueue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        await q.close()


def worker(queue_name: str, processor: Any, redis_url: str, **options: Any) -> Worker:
    options.setdefault("shutdown_grace", 2)
    return Worker(queue_name, processor, connection=redis_url, **options)


class GroupProbe:
    """Counts processors running at once per group; records start order/times."""

    def __init__(self) -> None:
        self.running: dict[str, int] = defaultdict(int)
        self.max: dict[str, int] = defaultdict(int)
        self.order: list[tuple[str, str | None]] = []
        self.starts: dict[str | None, list[float]] = defaultdict(list)
        self.done = 0

    def enter(self, job: Job) -> None:
        g = job.group or ""
        self.running[g] += 1
        self.max[g] = max(self.max[g], self.running[g])
        self.order.append((job.id, job.group))
        self.starts[job.group].append(time.monotonic())

    def leave(self, job: Job) -> None:
        self.running[job.group or ""] -= 1
        self.done += 1


def holding(probe: GroupProbe, seconds: float = 0.05) -> Any:
    async def process(job: Job) -> Any:
        probe.enter(job)
        try:
            await asyncio.sleep((job.data or {}).get("hold", seconds))
        finally:
            probe.leave(job)
        return job.id
    return process


def queue_keys(client: redis.Redis, queue_name: str, pattern: str = "*") -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(f"bull:{queue_name}:{pattern}",
                                                       count=1000))


# --------------------------------------------------------------------------- concurrency


async def test_group_concurrency_is_exact_in_one_process(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    await queue.set_group_concurrency(2)
    probe = GroupProbe()
    jobs = [{"name": "j", "data": {"hold": 0.08}, "opts": {"group": g}}
            for _ in range(8) for g in ("a", "b", "c")]
    await queue.add_bulk(jobs)
    async with worker(queue_name, holding(probe), redis_url, concurrency=12):
        await wait_for(lambda: probe.done == 24, timeout=15, what="24 jobs done")
    assert dict(probe.max) == {"a": 2, "b": 2, "c": 2}
    assert (await queue.get_job_counts("completed"))["completed"] == 24


async def test_group_concurrency_is_exact_across_three_worker_processes(
    redis_url: str, queue_name: str, queue: AsyncQueue, tmp_path: Any
) -> None:
    await queue.set_group_concurrency(2)
    apps = GroupApps(queue_name, redis_url, 3, tmp_path, concurrency=3)
    try:
        await wait_for(lambda: (apps.check_alive(), apps.ready())[1], timeout=20,
                       what="3 worker processes ready")
        await queue.add_bulk([{"name": "j", "data": {"g": g, "hold": 0.15},
                               "opts": {"group": g}}
                              for _ in range(10) for g in ("a", "b", "c")])

        async def all_done() -> bool:
            apps.check_alive()
            return (await queue.get_job_counts("completed"))["completed"] == 30
        await wait_for(all_done, timeout=30, what="30 jobs completed")
        starts = apps.starts()
        assert len(starts) == 30
        # 6 jobs may run at once (3 groups x 2) and each process takes at most 3,
        # so more than one process must have taken part.
        assert len({pid for *_, pid in starts}) >= 2
        assert apps.max_active() == {"a": 2, "b": 2, "c": 2}
    finally:
        apps.close()
    assert await queue.get_group_counts() == {}


async def test_default_group_concurrency_and_per_group_override(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    await queue.set_group_concurrency(1)               # every group
    await queue.set_group_concurrency(3, group="big")  # this one
    probe = GroupProbe()
    await queue.add_bulk([{"name": "j", "data": {"hold": 0.08}, "opts": {"group": "small"}}
                          for _ in range(5)]
                         + [{"name": "j", "data": {"hold": 0.08}, "opts": {"group": "big"}}
                            for _ in range(9)])
    async with worker(queue_name, holding(probe), redis_url, concurrency=10):
        await wait_for(lambda: probe.done == 14, timeout=15, what="14 jobs done")
    assert dict(probe.max) == {"small": 1, "big": 3}


async def test_per_name_concurrency_by_grouping_on_the_job_name(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    await queue.set_group_concurrency(1, group="resize")
    await queue.set_group_concurrency(2, group="email")
    probe = GroupProbe()
    jobs = []
    for _ in range(6):
        for name in ("resize", "email"):
            jobs.append({"name": name, "data": {"hold": 0.06}, "opts": {"group": name}})
    await queue.add_bulk(jobs)
    by_name: dict[str, int] = defaultdict(int)
    max_by_name: dict[str, int] = defaultdict(int)

    async def process(job: Job) -> Any:
        by_name[job.name] += 1
        max_by_name[job.name] = max(max_by_name[job.name], by_name[job.name])
        probe.enter(job)
        try:
            await asyncio.sleep(0.06)
        finally:
            by_name[job.name] -= 1
            probe.leave(job)

    async with worker(queue_name, process, redis_url, concurrency=10):
        await wait_for(lambda: probe.done == 12, timeout=15, what="12 jobs done")
    assert dict(max_by_name) == {"resize": 1, "email": 2}


async def test_raising_a_group_limit_unparks_the_group_promptly(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    await queue.set_group_concurrency(1, group="p")
    release = asyncio.Event()
    probe = GroupProbe()
    all_running = asyncio.Event()

    async def process(job: Job) -> Any:
        probe.enter(job)
        if probe.running["p"] == 3:
            all_running.set()
        try:
            await release.wait()
        finally:
            probe.leave(job)

    await queue.add_bulk([{"name": "j", "opts": {"group": "p"}} for _ in range(3)])
    async with worker(queue_name, process, redis_url, concurrency=5, drain_delay=5):
        await wait_for(lambda: probe.running["p"] == 1, what="first job running")

        async def parked() -> bool:
            return (await queue.get_group_counts()).get("p") == {"waiting": 2, "active": 1}
        await wait_for(parked, what="group p parked at its limit")
        assert probe.running["p"] == 1
        t0 = time.monotonic()
        await queue.set_group_concurrency(3, group="p")
        await wait_event(all_running, timeout=5, what="all 3 running after raising the limit")
        latency = time.monotonic() - t0
        release.set()
        await wait_for(lambda: probe.done == 3, what="3 done")
    # The worker blocks up to drain_delay (5 s) on an idle queue: the change
    # must wake it, not wait for that timeout.
    assert latency < 1.0
    assert probe.max["p"] == 3


# --------------------------------------------------------------------------- rate limits


async def test_group_rate_limit_per_group(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    duration = 0.5
    await queue.set_group_rate_limit(2, duration, group="r")
    probe = GroupProbe()
    await queue.add_bulk([{"name": "j", "data": {"hold": 0}, "opts": {"group": "r"}}
                          for _ in range(6)]
                         + [{"name": "j", "data": {"hold": 0}, "opts": {"group": "free"}}
                            for _ in range(6)])
    t0 = time.monotonic()
    async with worker(queue_name, holding(probe), redis_url, concurrency=5):
        await wait_for(lambda: probe.done == 12, timeout=15, what="12 jobs done")
    limited = sorted(probe.starts["r"])
    free = sorted(probe.starts["free"])
    assert len(limited) == 6 and len(free) == 6
    # The limiter is a fixed window (a counter that expires `duration` after
    # its first start); a sliding window a bit shorter than `duration` can
    # never hold more than `max` starts.
    assert max_in_window(limited, duration * 0.9) <= 2
    # Batches of 2: the 3rd start is a full window after the 1st, the 5th two.
    assert limited[2] - limited[0] >= duration - EARLY
    assert limited[4] - limited[0] >= 2 * duration - EARLY
    assert limited[5] - t0 < 3 * duration + 1.0
    # The other group is not limited: all of it runs in the first window.
    assert free[-1] - min(free[0], limited[0]) < duration


async def test_default_group_rate_limit_applies_to_every_group(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    duration = 0.4
    await queue.set_group_rate_limit(1, duration)  # every group
    probe = GroupProbe()
    await queue.add_bulk([{"name": "j", "data": {"hold": 0}, "opts": {"group": g}}
                          for _ in range(3) for g in ("x", "y")])
    async with worker(queue_name, holding(probe), redis_url, concurrency=4):
        await wait_for(lambda: probe.done == 6, timeout=15, what="6 jobs done")
    for g in ("x", "y"):
        starts = sorted(probe.starts[g])
        assert len(starts) == 3
        assert max_in_window(starts, duration * 0.9) == 1
        assert starts[2] - starts[0] >= 2 * duration - EARLY
    # The groups are limited separately: x and y each start in the first window.
    assert abs(probe.starts["x"][0] - probe.starts["y"][0]) < duration


# --------------------------------------------------------------------------- fairness


async def test_round_robin_a_busy_group_does_not_starve_another(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    await queue.add_bulk([{"name": "a", "opts": {"group": "A"}} for _ in range(1000)])
    await queue.add_bulk([{"name": "b", "opts": {"group": "B"}} for _ in range(10)])
    order: list[str | None] = []
    b_done = asyncio.Event()

    async def process(job: Job) -> Any:
        order.append(job.group)
        if order.count("B") == 10:
            b_done.set()

    w = worker(queue_name, process, redis_url, concurrency=1)
    async with w:
        await wait_event(b_done, timeout=20, what="all 10 B jobs started")
    await w.close(force=True)
    positions = [i for i, g in enumerate(order) if g == "B"]
    # Strict round-robin over two ready groups alternates A, B, A, B...: B's
    # 10 jobs are among the first 20 started. 30 leaves room for a different
    # (still fair) turn order, and is far from FIFO, where B would start at
    # position 1000.
    assert len(positions) == 10
    assert positions[-1] < 30, positions
    await queue.obliterate(force=True)


@pytest.mark.parametrize("first", ["grouped", "ungrouped"])
async def test_grouped_and_ungrouped_jobs_interleave(
    redis_url: str, queue_name: str, queue: AsyncQueue, first: str
) -> None:
    many = [{"name": "m", "opts": {"group": "G"} if first == "grouped" else {}}
            for _ in range(200)]
    few = [{"name": "f", "opts": {} if first == "grouped" else {"group": "G"}}
           for _ in range(5)]
    await queue.add_bulk(many)
    await queue.add_bulk(few)
    order: list[str] = []
    few_done = asyncio.Event()

    async def process(job: Job) -> Any:
        order.append(job.name)
        if order.count("f") == 5:
            few_done.set()

    w = worker(queue_name, process, redis_url, concurrency=1)
    async with w:
        await wait_event(few_done, timeout=20, what="the 5 later jobs started")
    await w.close(force=True)
    positions = [i for i, name in enumerate(order) if name == "f"]
    # Grouped and ungrouped jobs take turns: the 5 late ones are within the
    # first 10 (strict alternation); 15 is the tolerant bound.
    assert len(positions) == 5
    assert positions[-1] < 15, positions
    await queue.obliterate(force=True)


# --------------------------------------------------------------------------- delayed, retries


async def test_grouped_delayed_jobs_run_after_their_delay_within_limits(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    await queue.set_group_concurrency(1, group="d")
    probe = GroupProbe()
    t0 = time.monotonic()
    jobs = await queue.add_bulk([{"name": "j", "data": {"hold": 0.1},
                                  "opts": {"group": "d", "delay": 0.4}} for _ in range(3)])
    for job in jobs:
        assert await queue.get_job_state(job.id) == "delayed"
    assert (await queue.get_job_counts("delayed"))["delayed"] == 3
    assert redis_client.zcard(f"bull:{queue_name}:delayed") == 0  # not BullMQ's set
    async with worker(queue_name, holding(probe), redis_url, concurrency=5):
        await wait_for(lambda: probe.done == 3, timeout=10, what="3 delayed jobs done")
    starts = sorted(probe.starts["d"])
    assert starts[0] - t0 >= 0.4 - EARLY
    assert starts[0] - t0 < 0.4 + 1.0
    assert probe.max["d"] == 1
    # one at a time, 0.1 s each
    assert starts[2] - starts[0] >= 0.2 - EARLY


async def test_retry_with_backoff_stays_in_its_group_and_its_limit(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    await queue.set_group_concurrency(1, group="r")
    release = asyncio.Event()
    runs: list[tuple[str, str | None, int]] = []
    holder_running = asyncio.Event()

    async def process(job: Job) -> Any:
        runs.append((job.name, job.group, job.attempts_made))
        if job.name == "flaky" and job.attempts_made == 0:
            raise RuntimeError("first attempt fails")
        if job.name == "holder":
            holder_running.set()
            await release.wait()
        return "ok"

    flaky = await queue.add("flaky", {}, group="r", attempts=3,
                            backoff={"type": "fixed", "delay": 0.2})
    holder = await queue.add("holder", {}, group="r")
    async with worker(queue_name, process, redis_url, concurrency=4):
        await wait_event(holder_running, what="holder running")
        # The retry is due after 0.2 s but its group is full: it waits in the group.
        assert await queue.get_job_state(flaky.id) in ("delayed", "waiting")

        async def waiting_in_group() -> bool:
            return (await queue.get_job_state(flaky.id) == "waiting"
                    and (await queue.get_group_counts()).get("r")
                    == {"waiting": 1, "active": 1})
        await wait_for(waiting_in_group, timeout=5, what="retry waiting in its group")
        assert [r[0] for r in runs] == ["flaky", "holder"]
        release.set()
        assert await flaky.wait_until_finished(timeout=10) == "ok"
        assert await holder.wait_until_finished(timeout=10) == "ok"
    assert runs == [("flaky", "r", 0), ("holder", "r", 0), ("flaky", "r", 1)]
    stored = await queue.get_job(flaky.id)
    assert stored is not None and stored.attempts_made == 2 and stored.group == "r"


# --------------------------------------------------------------------------- states, counts


async def test_states_and_counts_of_grouped_jobs(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    await queue.set_group_concurrency(1, group="g1")
    g1a = await queue.add("j", {}, group="g1")
    g1b = await queue.add("j", {}, group="g1")
    g2 = await queue.add("j", {}, group="g2")
    later = await queue.add("j", {}, group="g2", delay=60)
    plain = await queue.add("j", {})
    for job in (g1a, g1b, g2, plain):
        assert await queue.get_job_state(job.id) == "waiting"
    assert await queue.get_job_state(later.id) == "delayed"
    counts = await queue.get_job_counts()
    assert counts["waiting"] == 4 and counts["delayed"] == 1 and counts["active"] == 0
    assert await queue.get_job_counts("waiting", "delayed") == {"waiting": 4, "delayed": 1}
    assert await queue.get_group_counts() == {"g1": {"waiting": 2, "active": 0},
                                              "g2": {"waiting": 1, "active": 0}}

    release = asyncio.Event()
    started: list[str] = []

    async def process(job: Job) -> Any:
        started.append(job.id)
        await release.wait()

    async with worker(queue_name, process, redis_url, concurrency=5):
        await wait_for(lambda: len(started) == 3, what="3 jobs running")
        assert set(started) == {g1a.id, g2.id, plain.id}
        for job in (g1a, g2, plain):
            assert await queue.get_job_state(job.id) == "active"
        assert await queue.get_job_state(g1b.id) == "waiting"
        counts = await queue.get_job_counts("waiting", "active", "delayed")
        assert counts == {"waiting": 1, "active": 3, "delayed": 1}
        assert await queue.get_group_counts() == {"g1": {"waiting": 1, "active": 1},
                                                  "g2": {"waiting": 0, "active": 1}}
        release.set()
        await wait_for(lambda: len(started) == 4, what="g1b running")
        await wait_for(lambda: _state_is(queue, g1b.id, "completed"), what="g1b completed")
    assert await queue.get_group_counts() == {}
    assert (await queue.get_job_counts("completed"))["completed"] == 4


async def _state_is(queue: AsyncQueue, job_id: str, state: str) -> bool:
    return await queue.get_job_state(job_id) == state


# --------------------------------------------------------------------------- cleanup


async def test_remove_a_waiting_grouped_job(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    job = await queue.add("j", {}, group="rm")
    delayed = await queue.add("j", {}, group="rm", delay=60)
    assert await queue.remove(job.id) is True
    assert await queue.remove(delayed.id) is True
    assert await queue.get_job_state(job.id) == "unknown"
    assert await queue.get_job_state(delayed.id) == "unknown"
    assert all(c == {"waiting": 0, "active": 0}
               for c in (await queue.get_group_counts()).values())
    counts = await queue.get_job_counts("waiting", "delayed")
    assert counts == {"waiting": 0, "delayed": 0}
    assert queue_keys(redis_client, queue_name, "g:*") == []
    # The group still works afterwards.
    again = await queue.add("j", {}, group="rm")

    async def process(job: Job) -> Any:
        return job.group

    async with worker(queue_name, process, redis_url):
        assert await again.wait_until_finished(timeout=10) == "rm"


@pytest.mark.parametrize("how", ["remove", "cancel"])
async def test_removing_the_last_job_of_a_group_drops_it_from_group_counts(
    queue_name: str, queue: AsyncQueue, how: str
) -> None:
    job = await queue.add("j", {}, group="ghost")
    if how == "remove":
        assert await queue.remove(job.id) is True
    else:
        assert await queue.cancel_job(job.id) == "cancelled"
    assert await queue.get_group_counts() == {}


async def test_drain_removes_grouped_waiting_and_optionally_delayed(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    await queue.add_bulk([{"name": "j", "opts": {"group": g}} for g in ("a", "b", "a")])
    delayed = await queue.add("j", {}, group="a", delay=60)
    await queue.add("j", {})
    await queue.drain()
    assert await queue.get_job_counts("waiting", "delayed") == {"waiting": 0, "delayed": 1}
    assert await queue.get_group_counts() == {}
    assert await queue.get_job_state(delayed.id) == "delayed"
    assert queue_keys(redis_client, queue_name, "g:*") == []
    await queue.drain(delayed=True)
    assert await queue.get_job_counts("waiting", "delayed") == {"waiting": 0, "delayed": 0}
    assert await queue.get_job_state(delayed.id) == "unknown"
    # A drained group takes new jobs normally.
    fresh = await queue.add("j", {}, group="a")

    async def process(job: Job) -> Any:
        return "ran"

    async with worker(queue_name, process, redis_url):
        assert await fresh.wait_until_finished(timeout=10) == "ran"


async def test_obliterate_leaves_no_group_keys(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    await queue.set_group_concurrency(1)
    await queue.set_group_rate_limit(5, 10, group="lim")
    await queue.set_group_concurrency(2, group="big")
    done = await queue.add("j", {}, group="lim")  # leaves a limiter counter behind
    await queue.add_bulk([{"name": "j", "opts": {"group": g}}
                          for g in ("lim", "big", "big", "other") for _ in range(3)])
    await queue.add("j", {}, group="big", delay=60)
    await queue.add("j", {})

    async def process(job: Job) -> Any:
        return "ok"

    async with worker(queue_name, process, redis_url, autorun=False) as w:
        assert await done.wait_until_finished(timeout=10) == "ok"
        await w.close()
    assert queue_keys(redis_client, queue_name, "g:*") != []
    assert queue_keys(redis_client, queue_name, "gr:*") != []
    await queue.obliterate()
    assert queue_keys(redis_client, queue_name, "g:*") == []
    assert queue_keys(redis_client, queue_name, "gr:*") == []
    assert queue_keys(redis_client, queue_name) == []


# --------------------------------------------------------------------------- BullMQ format


async def test_grouped_jobs_are_not_in_bullmq_wait_lists(
    queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    await queue.add("j", {}, group="g")
    await queue.add("j", {}, group="g", priority=3)
    await queue.add("j", {}, group="g", lifo=True)
    await queue.add("j", {}, group="g", delay=30)
    base = f"bull:{queue_name}:"
    # A BullMQ worker takes jobs only from wait, prioritized and delayed.
    assert redis_client.llen(base + "wait") == 0
    assert redis_client.zcard(base + "prioritized") == 0
    assert redis_client.zcard(base + "delayed") == 0
    assert redis_client.llen(base + "paused") == 0
    counts = await queue.get_job_counts("waiting", "prioritized", "delayed")
    assert counts == {"waiting": 3, "prioritized": 0, "delayed": 1}


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", ["", "*", 5, b"g", ["g"], "x" * 257])
async def test_bad_group_ids_are_refused_before_any_write(
    queue_name: str, queue: AsyncQueue, redis_client: redis.Redis, bad: Any
) -> None:
    with pytest.raises((ValueError, TypeError), match="group"):
        await queue.add("j", {}, group=bad)
    with pytest.raises((ValueError, TypeError), match="group"):
        await queue.add_bulk([{"name": "ok", "opts": {"group": "fine"}},
                              {"name": "bad", "opts": {"group": bad}}])
    with pytest.raises((ValueError, TypeError), match="group"):
        await queue.set_group_concurrency(2, group=bad)
    with pytest.raises((ValueError, TypeError), match="group"):
        await queue.set_group_rate_limit(2, 1, group=bad)
    assert queue_keys(redis_client, queue_name) == []


async def test_good_group_edge_cases_are_accepted(
    queue_name: str, queue: AsyncQueue
) -> None:
    long = await queue.add("j", {}, group="x" * 256)
    uni = await queue.add("j", {}, group="grüße:mail/ö")
    assert await queue.get_job_state(long.id) == "waiting"
    assert (await queue.get_job(uni.id)).group == "grüße:mail/ö"  # type: ignore[union-attr]
    assert set(await queue.get_group_counts()) == {"x" * 256, "grüße:mail/ö"}


async def test_bad_group_limits_are_refused(queue_name: str, queue: AsyncQueue,
                                            redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        await queue.set_group_concurrency(-1)
    with pytest.raises(ValueError, match="concurrency"):
        await queue.set_group_concurrency(1.5, group="g")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duration"):
        await queue.set_group_rate_limit(2, 0, group="g")
    with pytest.raises(ValueError, match="max"):
        await queue.set_group_rate_limit(-2, 1)
    assert queue_keys(redis_client, queue_name) == []


# --------------------------------------------------------------------------- listing, clean


async def test_get_jobs_lists_grouped_waiting_and_delayed_jobs(
    queue_name: str, queue: AsyncQueue
) -> None:
    waiting = await queue.add("j", {}, group="g")
    delayed = await queue.add("j", {}, group="g", delay=60)
    assert await queue.get_job_counts("waiting", "delayed") == {"waiting": 1, "delayed": 1}
    assert [j.id for j in await queue.get_jobs("waiting")] == [waiting.id]
    assert [j.id for j in await queue.get_jobs("delayed")] == [delayed.id]


async def test_clean_removes_grouped_waiting_and_delayed_jobs(
    queue_name: str, queue: AsyncQueue
) -> None:
    waiting = await queue.add("j", {}, group="g")
    delayed = await queue.add("j", {}, group="g", delay=60)
    assert await queue.clean(0, state="waiting") == [waiting.id]
    assert await queue.clean(0, state="delayed") == [delayed.id]
    assert await queue.get_job_counts("waiting", "delayed") == {"waiting": 0, "delayed": 0}


@pytest.mark.parametrize("state", ["waiting", "delayed", "prioritized", "completed", "failed"])
async def test_clean_with_no_grace_removes_jobs_from_the_same_millisecond(
    queue_name: str, queue: AsyncQueue, redis_url: str, state: str
) -> None:
    """clean(0) removes a job created (or finished) in the very millisecond of the
    clean: "older than 0 s" includes now. The clock is pinned so the same
    millisecond is certain, not a matter of luck (the flake of issue 17)."""
    clock = queue._core.clock
    clock.fixed_ms = 1_700_000_000_000
    opts: dict[str, Any] = {"group": "g"} if state == "waiting" else {}
    if state == "delayed":
        opts["delay"] = 60
    if state == "prioritized":
        opts["priority"] = 3
    job = await queue.add("j", {}, **opts)
    if state in ("completed", "failed"):  # finished in that same millisecond
        client = redis.Redis.from_url(redis_url)
        key = f"bull:{queue_name}:"
        client.lrem(key + "wait", 0, job.id)
        client.hset(key + job.id, "finishedOn", clock.fixed_ms)
        client.zadd(key + state, {job.id: clock.fixed_ms})
        client.close()
    assert await queue.clean(0, state=state) == [job.id]
    assert await queue.get_job_counts(state) == {state: 0}
