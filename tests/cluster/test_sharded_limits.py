"""Global rate limit and global concurrency of a sharded queue (pyqueue/_shard_limits.py),
handed out as tokens from the coordinator's slot: on the session's Redis Cluster and on one
plain server, with real workers (two ShardedWorkers at once, and one killed with SIGKILL)."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any
from uuid import uuid4

import pytest
import redis
from _worker_helpers import Probe, max_in_window, subprocess_env, wait_for, wait_for_sync

from pyqueue import _shard_limits as L
from pyqueue.connection import async_client
from pyqueue.errors import InvalidJobOptionsError
from pyqueue.sharded import AsyncShardedQueue, ShardedQueue, ShardedWorker
from pyqueue.worker._gate import Grant


@pytest.fixture
def base_name() -> str:
    return f"l{uuid4().hex[:10]}"


def limits_key(name: str, part: str = "") -> str:
    return f"bull:{{{name}}}:pq:limits{part}"


def leases(url: str, name: str) -> int:
    client = redis.Redis.from_url(url) if "cluster" not in url else \
        redis.RedisCluster.from_url(url.replace("redis+cluster", "redis"))
    with client:
        return int(client.zcard(limits_key(name, ":leases")))


async def run_concurrency_limit(url: str, name: str, *, shards: int, limit: int,
                                jobs: int) -> Probe:
    """Two ShardedWorkers (``shards * 3`` slots each) on ``jobs`` jobs under a
    global concurrency of ``limit``; returns the probe of the processors."""
    probe = Probe()

    async def process(job: Any) -> None:
        probe.enter(job.id)
        try:
            await asyncio.sleep(0.02)  # the work: overlapping jobs must be visible
        finally:
            probe.leave()

    queue = AsyncShardedQueue(name, shards=shards, connection=url)
    try:
        await queue.set_global_concurrency(limit)
        await queue.add_bulk([{"name": "n", "data": i} for i in range(jobs)])
        workers = [ShardedWorker(name, process, shards=shards, connection=url, concurrency=3)
                   for _ in range(2)]
        try:
            await wait_for(lambda: probe.done >= jobs, timeout=60, what="every job processed")
            # Every lease is given back once the slots are done.
            await wait_for(lambda: leases(url, name) == 0, timeout=10, what="leases given back")
        finally:
            await asyncio.gather(*(worker.close() for worker in workers))
        counts = await queue.get_job_counts("completed", "waiting", "active")
        assert counts == {"completed": jobs, "waiting": 0, "active": 0}
    finally:
        await queue.obliterate(force=True)
        await queue.close()
    return probe


async def test_global_concurrency_over_shards_and_two_workers(cluster_url: str,
                                                              base_name: str) -> None:
    probe = await run_concurrency_limit(cluster_url, base_name, shards=6, limit=4, jobs=60)
    # 36 slots in all, never more than 4 processors at once; and the limit is used.
    assert probe.max_running == 4, probe.max_running


async def test_global_concurrency_on_one_server(redis_url: str, base_name: str) -> None:
    probe = await run_concurrency_limit(redis_url, base_name, shards=4, limit=3, jobs=40)
    assert probe.max_running == 3, probe.max_running
    with redis.Redis.from_url(redis_url) as client:  # obliterate removed the coordinator
        assert client.keys(f"bull:{{{base_name}*") == []


def record_windows(worker: ShardedWorker, windows: Counter[int]) -> None:
    """Count the jobs each fetch obtained under the coordinator window it was
    granted from (the real gate still does its work)."""
    for gate in worker._gates:
        real = gate.taken

        def taken(job_ids: Any, grant: Grant, real: Any = real) -> None:
            if grant.data is not None:
                windows[grant.data[2]] += len(job_ids)
            real(job_ids, grant)

        gate.taken = taken  # type: ignore[method-assign]


async def run_rate_limit(url: str, name: str, *, max_jobs: int, duration: float,
                         jobs: int, limiter: dict[str, Any] | None = None) -> list[float]:
    """Jobs processed by two ShardedWorkers under a rate limit (the queue's, or
    the workers' own ``limiter``); returns their ``processedOn`` (seconds). Per
    window of the coordinator, at most ``max_jobs`` jobs were taken."""
    queue = AsyncShardedQueue(name, shards=4, connection=url)
    windows: Counter[int] = Counter()
    try:
        if limiter is None:
            await queue.set_global_rate_limit(max_jobs, duration)
        await queue.add_bulk([{"name": "n", "data": i} for i in range(jobs)])
        workers = [ShardedWorker(name, lambda job: None, shards=4, connection=url,
                                 concurrency=2, limiter=limiter) for _ in range(2)]
        for worker in workers:
            record_windows(worker, windows)
        try:
            await wait_for(lambda: sum(w.jobs_processed for w in workers) >= jobs,
                           timeout=60, what="every job processed")
        finally:
            await asyncio.gather(*(worker.close() for worker in workers))
        done = await queue.get_jobs("completed")
        assert len(done) == jobs
        assert sum(windows.values()) == jobs and max(windows.values()) <= max_jobs, windows
        starts = sorted(windows)  # each window begins once the one before is over
        assert all(b - a >= duration * 1000 for a, b in itertools.pairwise(starts)), starts
        return [job.processed_on.timestamp() for job in done if job.processed_on]
    finally:
        await queue.obliterate(force=True)
        await queue.close()


def check_fixed_windows(starts: list[float], max_jobs: int, duration: float, jobs: int) -> None:
    """What a fixed window of ``max_jobs`` per ``duration`` allows: ``jobs`` starts
    need ``ceil(jobs / max_jobs)`` windows, each at least ``duration`` after the
    one before; and no span of ``duration`` holds more than two windows' worth."""
    assert len(starts) == jobs
    windows = -(-jobs // max_jobs)
    span = max(starts) - min(starts)
    assert span >= (windows - 1) * duration - 0.1, (span, sorted(starts))
    assert max_in_window(starts, duration) <= 2 * max_jobs


async def test_global_rate_limit_over_shards(cluster_url: str, base_name: str) -> None:
    started = time.monotonic()
    starts = await run_rate_limit(cluster_url, base_name, max_jobs=4, duration=0.5, jobs=14)
    check_fixed_windows(starts, 4, 0.5, 14)
    assert time.monotonic() - started < 10


async def test_worker_limiter_on_one_server(redis_url: str, base_name: str) -> None:
    starts = await run_rate_limit(redis_url, base_name, max_jobs=3, duration=0.4, jobs=9,
                                  limiter={"max": 3, "duration": 0.4})
    check_fixed_windows(starts, 3, 0.4, 9)


async def test_tokens_per_window_never_exceed_max(redis_url: str, base_name: str) -> None:
    """The coordinator itself: one window hands out ``max`` tokens in all, gets back
    the unused ones, and says how long until the window resets."""
    client, _ = async_client(redis_url)
    keys = L.coordinator_keys("bull", base_name)
    gates = [L.ShardLimits(client, keys, owner=f"w{i}", lease_ms=30_000, limiter=None)
             for i in range(3)]
    try:
        await client.hset(limits_key(base_name), mapping={"max": 5, "duration": 60_000})
        first = await gates[0].acquire(4)
        second = await gates[1].acquire(4)
        assert (first.n, second.n) == (4, 1)
        denied = await gates[2].acquire(4)
        assert denied.n == 0 and 59 < denied.wait <= 60
        gates[0].taken(["a"], first)  # 3 not used: refunded to the same window
        await gates[0].close()
        again = await gates[2].acquire(4)
        assert again.n == 3
        assert (await gates[1].acquire(1)).n == 0
        assert int(await client.hget(limits_key(base_name, ":rate"), "n")) == 5
    finally:
        await client.delete(keys.shard_limits, keys.shard_rate, keys.shard_leases)
        await client.aclose()


async def test_no_limit_no_round_trip_until_settings_age(redis_url: str,
                                                         base_name: str) -> None:
    """Without a limit a gate asks the coordinator once, then trusts that answer for
    SETTINGS_TTL seconds (a limit set meanwhile applies after that)."""
    client, _ = async_client(redis_url)
    keys = L.coordinator_keys("bull", base_name)
    gate = L.ShardLimits(client, keys, owner="w", lease_ms=30_000, limiter=None)
    try:
        assert await gate.acquire(5) == Grant(5, 0.0, None)
        assert gate.fetch_next()
        await client.hset(limits_key(base_name), "concurrency", 2)
        grant = await gate.acquire(5)  # no call: the read is fresh
        assert grant.n == 5 and grant.data is None
        gate._read_at -= L.SETTINGS_TTL  # the read has aged (as it does after 2 s)
        grant = await gate.acquire(5)
        assert grant.n == 2 and gate.limited and not gate.fetch_next()
        gate.taken(["a"], grant)
        gate.release("a")
        await gate.close()
        assert await client.zcard(limits_key(base_name, ":leases")) == 0
    finally:
        await client.delete(limits_key(base_name), limits_key(base_name, ":leases"))
        await client.aclose()


def test_bad_input_refused_before_anything_is_written(redis_url: str, base_name: str) -> None:
    with ShardedQueue(base_name, shards=2, connection=redis_url) as queue, \
            redis.Redis.from_url(redis_url) as client:
        for bad in (0, -1, 1.5, "3", True):
            with pytest.raises(InvalidJobOptionsError):
                queue.set_global_concurrency(bad)  # type: ignore[arg-type]
            with pytest.raises(InvalidJobOptionsError):
                queue.set_global_rate_limit(bad, 1)  # type: ignore[arg-type]
        for bad_duration in (0, -1, "1", None, 0.0001):
            with pytest.raises(InvalidJobOptionsError):
                queue.set_global_rate_limit(5, bad_duration)  # type: ignore[arg-type]
        for limiter in ({"max": 0, "duration": 1}, {"max": 2, "duration": 0}, {"max": 2}):
            with pytest.raises(InvalidJobOptionsError):
                ShardedWorker(base_name, lambda job: None, shards=2, connection=redis_url,
                              limiter=limiter, autorun=False)
        assert client.keys(f"bull:{{{base_name}}}*") == []


def test_none_removes_a_limit(redis_url: str, base_name: str) -> None:
    with ShardedQueue(base_name, shards=2, connection=redis_url) as queue, \
            redis.Redis.from_url(redis_url, decode_responses=True) as client:
        queue.set_global_concurrency(3)
        queue.set_global_rate_limit(10, 2)
        assert client.hgetall(limits_key(base_name)) == {
            "concurrency": "3", "max": "10", "duration": "2000"}
        queue.set_global_concurrency(None)
        assert client.hgetall(limits_key(base_name)) == {"max": "10", "duration": "2000"}
        queue.set_global_rate_limit(None)
        assert client.hgetall(limits_key(base_name)) == {}


def test_sync_settings_on_the_cluster(cluster_url: str, base_name: str) -> None:
    """The sync queue writes the coordinator (its own slot) on a cluster too, and
    obliterate removes it with the shards."""
    with ShardedQueue(base_name, shards=3, connection=cluster_url) as queue, \
            redis.RedisCluster.from_url(cluster_url.replace("redis+cluster", "redis"),
                                        decode_responses=True) as client:
        queue.set_global_concurrency(2)
        queue.set_global_rate_limit(7, 1.5)
        assert client.hgetall(limits_key(base_name)) == {
            "concurrency": "2", "max": "7", "duration": "1500"}
        queue.add("n", 1)
        queue.obliterate(force=True)
        assert client.exists(limits_key(base_name)) == 0


CRASHING_WORKER = """
import asyncio, sys
import redis.asyncio
from pyqueue.sharded import ShardedWorker

url, name = sys.argv[1], sys.argv[2]

async def main():
    client = redis.asyncio.Redis.from_url(url)
    async def process(job):
        await client.sadd("crash:" + name, job.id)
        await asyncio.Event().wait()  # never finishes: killed with its jobs
    worker = ShardedWorker(name, process, shards=4, connection=url, concurrency=2,
                           lock_duration=1, stalled_interval=0.5)
    await worker.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_killed_worker_leases_expire(redis_url: str, base_name: str) -> None:
    """A worker killed with its jobs holds every lease; they expire after its lock
    duration (1 s) and another worker gets the capacity back."""
    queue = AsyncShardedQueue(base_name, shards=4, connection=redis_url)
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_WORKER, redis_url, base_name],
                            env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    sync = redis.Redis.from_url(redis_url)
    try:
        await queue.set_global_concurrency(2)
        await queue.add_bulk([{"name": "n", "data": i} for i in range(10)])
        wait_for_sync(lambda: sync.scard(f"crash:{base_name}") == 2, timeout=20,
                      what="the doomed worker to hold 2 jobs")
        assert leases(redis_url, base_name) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = time.monotonic()
        done: list[float] = []
        worker = ShardedWorker(base_name, lambda job: done.append(time.monotonic()), shards=4,
                               connection=redis_url, concurrency=2, stalled_interval=0.5)
        try:
            await wait_for(lambda: len(done) >= 10, timeout=30, what="every job processed")
        finally:
            await worker.close()
        # Nothing ran before the dead worker's leases expired (1 s after its last renewal).
        assert min(done) - killed_at > 0.3
        assert (await queue.get_job_counts("completed"))["completed"] == 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sync.delete(f"crash:{base_name}")
        sync.close()
        await queue.obliterate(force=True)
        await queue.close()


async def test_leases_are_extended_with_the_locks(redis_url: str, base_name: str) -> None:
    """With ``lock_duration=1`` a lease lasts 1 s, but it is extended with the job's
    lock while the job runs: past the leases' first expiry no third job starts."""
    queue = AsyncShardedQueue(base_name, shards=3, connection=redis_url)
    sync = redis.Redis.from_url(redis_url)
    go = asyncio.Event()
    probe = Probe()

    async def process(job: Any) -> None:
        probe.enter(job.id)
        try:
            await go.wait()
        finally:
            probe.leave()

    def lease_scores() -> list[float]:
        return [score for _, score in
                sync.zrange(limits_key(base_name, ":leases"), 0, -1, withscores=True)]

    try:
        await queue.set_global_concurrency(2)
        await queue.add_bulk([{"name": "n", "data": i} for i in range(5)])
        worker = ShardedWorker(base_name, process, shards=3, connection=redis_url,
                               concurrency=2, lock_duration=1)
        try:
            await wait_for(lambda: probe.running == 2, what="two jobs running")
            first_expiry = max(lease_scores())
            await wait_for(lambda: min(lease_scores()) >= first_expiry + 1000, timeout=10,
                           what="both leases extended past their first expiry")
            assert len(probe.starts) == 2 and probe.running == 2
            go.set()
            await wait_for(lambda: probe.done == 5, what="every job processed")
            await wait_for(lambda: not lease_scores(), what="leases given back")
        finally:
            await worker.close()
    finally:
        sync.close()
        await queue.obliterate(force=True)
        await queue.close()


async def test_limit_set_and_removed_on_running_workers(redis_url: str, base_name: str) -> None:
    """Workers that found no limit re-read the settings within SETTINGS_TTL (even
    while every slot keeps fetching next jobs with its finishes): a concurrency
    set on a busy queue holds from then on, and removing it lifts it."""
    queue = AsyncShardedQueue(base_name, shards=4, connection=redis_url)
    entries: list[tuple[float, int]] = []  # (monotonic time, processors running)
    running = 0

    async def process(job: Any) -> None:
        nonlocal running
        running += 1
        entries.append((time.monotonic(), running))
        try:
            await asyncio.sleep(0.05)
        finally:
            running -= 1

    try:  # 12 slots at 20 jobs/s each: enough for 6 s without a limit
        await queue.add_bulk([{"name": "n", "data": i} for i in range(1500)])
        worker = ShardedWorker(base_name, process, shards=4, connection=redis_url,
                               concurrency=3)
        try:
            await wait_for(lambda: running >= 6, what="the unlimited worker busy")
            await queue.set_global_concurrency(2)
            set_at = time.monotonic()
            settled = set_at + L.SETTINGS_TTL + 0.5
            await wait_for(lambda: entries[-1][0] > settled + 1.0, timeout=20,
                           what="a second of jobs under the new limit")
            late = [n for at, n in entries if at > settled]
            assert late and max(late) <= 2, max(late)
            await queue.set_global_concurrency(None)
            await wait_for(lambda: running > 2, timeout=L.SETTINGS_TTL + 3,
                           what="the limit lifted")
        finally:
            await worker.close()
    finally:
        await queue.obliterate(force=True)
        await queue.close()
