"""Worker behaviour against a real Redis: processors, retries and backoff, special
errors, concurrency, rate limits, wake-ups, locks and stalls, fencing, events.

Nothing here sleeps to synchronise: tests await events set by processors or
worker callbacks, or poll a condition with a deadline (``wait_for``). Timing
assertions use tolerant bounds. Durations are short so the file runs fast.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import redis
from _worker_helpers import AppProcess, Probe, max_in_window, wait_event, wait_for

from pyqueue import (
    AsyncQueue,
    DelayedError,
    Job,
    JobLockError,
    JobTimeoutError,
    RateLimitError,
    UnrecoverableError,
    Worker,
    register_backoff_strategy,
)

# Slack for timing measurements taken in this process against delays that Redis
# (server clock, whole milliseconds) decides.
EARLY = 0.015
LATE = 0.5


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> Any:
    q = AsyncQueue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        await q.close()


def job_key(queue_name: str, job_id: str) -> str:
    return f"bull:{queue_name}:{job_id}"


async def state_is(queue: AsyncQueue, job_id: str, *states: str) -> bool:
    return await queue.get_job_state(job_id) in states


def worker(queue_name: str, processor: Any, redis_url: str, **options: Any) -> Worker:
    """A worker with a short shutdown grace, so a failing test does not hang in close()."""
    options.setdefault("shutdown_grace", 2)
    return Worker(queue_name, processor, connection=redis_url, **options)


# --------------------------------------------------------------------------- processors


async def test_async_processor_return_value_is_stored_as_json(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    done = asyncio.Event()
    completed: list[tuple[str, Any]] = []

    async def send(job: Job) -> Any:
        return {"message_id": "m-1", "echo": job.data, "n": [1, 2.5, None], "ok": True}

    w = worker(queue_name, send, redis_url)
    w.on("completed", lambda job, result: (completed.append((job.id, result)), done.set()))
    async with w:
        job = await queue.add("welcome", {"to": "a@example.com"})
        await wait_event(done, what="completed event")

    expected = {"message_id": "m-1", "echo": {"to": "a@example.com"}, "n": [1, 2.5, None],
                "ok": True}
    assert completed == [(job.id, expected)]
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.return_value == expected
    raw = redis_client.hget(job_key(queue_name, job.id), "returnvalue")
    assert raw is not None and json.loads(raw) == expected
    assert await queue.get_job_state(job.id) == "completed"
    assert stored.attempts_made == 1
    assert stored.failed_reason is None
    assert stored.processed_on is not None and stored.finished_on is not None
    # (timestamp and processed_on come from two clients' estimates of the server clock)
    assert stored.timestamp - timedelta(seconds=0.05) <= stored.processed_on
    assert stored.processed_on <= stored.finished_on
    assert (await queue.get_job_counts("completed", "active", "waiting")) == {
        "completed": 1, "active": 0, "waiting": 0}


async def test_plain_def_processor_runs_in_a_thread_and_loop_stays_responsive(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    release = threading.Event()
    seen: dict[str, Any] = {}
    progress: list[Any] = []

    def add_up(job: Job) -> Any:
        seen["thread"] = threading.current_thread()
        job.update_progress(42)  # a plain call inside a plain def processor
        loop.call_soon_threadsafe(started.set)
        if not release.wait(10):
            raise RuntimeError("never released")
        return {"sum": sum(job.data["xs"])}

    w = worker(queue_name, add_up, redis_url)
    w.on("progress", lambda job, value: progress.append((job.id, value)))
    try:
        async with w:
            job = await queue.add("sum", {"xs": [1, 2, 3]})
            await wait_event(started, what="processor start")
            # The processor is blocked in its thread; the loop still serves us.
            t0 = time.monotonic()
            assert await queue.get_job_state(job.id) == "active"
            stored = await queue.get_job(job.id)
            assert stored is not None and stored.progress == 42
            ticker = asyncio.Event()
            loop.call_later(0.01, ticker.set)
            await wait_event(ticker, timeout=2, what="loop timer")
            assert time.monotonic() - t0 < 0.5
            release.set()
            await wait_for(lambda: state_is(queue, job.id, "completed"), what="completed")
    finally:
        release.set()

    assert seen["thread"] is not threading.main_thread()
    assert progress == [(job.id, 42)]
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.return_value == {"sum": 6}


async def test_subclass_overriding_process(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    class Doubler(Worker):
        async def process(self, job: Job) -> Any:
            return job.data["x"] * 2

    async with Doubler(queue_name, connection=redis_url, shutdown_grace=2):
        job = await queue.add("double", {"x": 21})
        assert await job.wait_until_finished(timeout=10) == 42
    assert await queue.get_job_state(job.id) == "completed"


def test_worker_without_processor_raises_at_construction(redis_url: str,
                                                           queue_name: str) -> None:
    with pytest.raises(ValueError, match="processor"):
        Worker(queue_name, connection=redis_url)
    with pytest.raises(ValueError, match="processor"):
        Worker(queue_name, "not callable", connection=redis_url)  # type: ignore[arg-type]


async def test_exception_retries_while_attempts_remain_then_fails(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    seen_attempts: list[int] = []
    failed: list[tuple[str, BaseException]] = []

    async def flaky(job: Job) -> Any:
        seen_attempts.append(job.attempts_made)
        raise ValueError("smtp said no")

    w = worker(queue_name, flaky, redis_url)
    w.on("failed", lambda job, exc: failed.append((job.id, exc)))
    async with w:
        job = await queue.add("send", {}, attempts=3)
        await wait_for(lambda: len(failed) >= 3, what="three failed attempts")
        await wait_for(lambda: state_is(queue, job.id, "failed"), what="failed state")

    assert seen_attempts == [0, 1, 2]
    assert len(failed) == 3
    assert all(isinstance(exc, ValueError) for _, exc in failed)
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.failed_reason == "smtp said no"
    assert stored.attempts_made == 3
    assert stored.finished_on is not None
    assert isinstance(stored.stacktrace, list) and len(stored.stacktrace) == 3
    assert all(isinstance(s, str) and "ValueError" in s for s in stored.stacktrace)
    assert stored.return_value is None


async def test_fixed_backoff_waits_in_delayed_between_attempts(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    starts: list[float] = []
    first_failed = asyncio.Event()

    async def flaky(job: Job) -> Any:
        starts.append(time.monotonic())
        if len(starts) < 3:
            raise RuntimeError(f"try {len(starts)}")
        return "third time lucky"

    w = worker(queue_name, flaky, redis_url)
    w.on("failed", lambda job, exc: first_failed.set())
    async with w:
        job = await queue.add("send", {}, attempts=3, backoff=0.3)
        await wait_event(first_failed, what="first failure")
        await wait_for(lambda: state_is(queue, job.id, "delayed"), timeout=2,
                       what="delayed state during the backoff")
        delayed = await queue.get_job(job.id)
        assert delayed is not None and delayed.attempts_made == 1
        assert 0.2 <= delayed.delay <= 0.3
        assert await job.wait_until_finished(timeout=10) == "third time lucky"

    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 2
    for gap in gaps:
        assert 0.3 - EARLY <= gap < 0.3 + LATE, gaps
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 3


async def test_exponential_backoff_doubles(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    starts: list[float] = []

    async def flaky(job: Job) -> Any:
        starts.append(time.monotonic())
        if len(starts) < 4:
            raise RuntimeError("again")
        return "ok"

    async with worker(queue_name, flaky, redis_url):
        job = await queue.add("send", {}, attempts=4,
                              backoff={"type": "exponential", "delay": 0.05})
        assert await job.wait_until_finished(timeout=10) == "ok"

    gaps = [b - a for a, b in itertools.pairwise(starts)]
    expected = [0.05, 0.1, 0.2]
    assert len(gaps) == 3
    for gap, want in zip(gaps, expected, strict=True):
        assert want - EARLY <= gap < want + LATE, (gaps, expected)


async def test_backoff_jitter_stays_within_bounds(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    delay, jitter = 0.4, 0.5
    low, high = delay * (1 - jitter), delay
    fails: dict[str, float] = {}
    gaps: dict[str, float] = {}

    async def flaky(job: Job) -> Any:
        now = time.monotonic()
        if job.id not in fails:
            fails[job.id] = time.monotonic()
            raise RuntimeError("jittery")
        gaps[job.id] = now - fails[job.id]
        return "ok"

    async with worker(queue_name, flaky, redis_url, concurrency=6):
        jobs = [await queue.add("send", {}, attempts=2,
                                backoff={"type": "fixed", "delay": delay, "jitter": jitter})
                for _ in range(6)]
        for job in jobs:
            assert await job.wait_until_finished(timeout=10) == "ok"

    for job_id, gap in gaps.items():
        assert low - EARLY <= gap < high + LATE, (job_id, gap)
    # The chosen backoff of each retry, from its `delayed` event (absolute due ms)
    # minus the event's own server timestamp.
    waits = []
    for entry_id, fields in redis_client.xrange(f"bull:{queue_name}:events"):
        if fields.get(b"event") == b"delayed":
            entry_ms = int(entry_id.split(b"-")[0])
            waits.append(int(fields[b"delay"]) - entry_ms)
    assert len(waits) == 6
    for wait_ms in waits:
        assert low * 1000 - 50 <= wait_ms < high * 1000 + 2, waits
    assert len(set(waits)) > 1, f"jitter did not vary the delays: {waits}"


async def test_registered_custom_backoff_strategy(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    name = f"linear-{uuid.uuid4().hex[:8]}"
    calls: list[tuple[int, str, str]] = []

    class Bounce(Exception):
        pass

    def linear(attempts_made: int, error: BaseException, job: Any) -> float | None:
        calls.append((attempts_made, type(error).__name__, job.id))
        if job.data.get("give_up"):
            return None  # no further attempts
        return 0.05 * attempts_made

    register_backoff_strategy(name, linear)
    starts: dict[str, list[float]] = {}

    async def flaky(job: Job) -> Any:
        starts.setdefault(job.id, []).append(time.monotonic())
        if len(starts[job.id]) < 3:
            raise Bounce("bounced")
        return "delivered"

    async with worker(queue_name, flaky, redis_url):
        job = await queue.add("send", {}, attempts=3, backoff={"type": name})
        assert await job.wait_until_finished(timeout=10) == "delivered"
        quitter = await queue.add("send", {"give_up": True}, attempts=5,
                                  backoff={"type": name})
        await wait_for(lambda: state_is(queue, quitter.id, "failed"), what="give-up fails")

    assert calls == [(1, "Bounce", job.id), (2, "Bounce", job.id), (1, "Bounce", quitter.id)]
    s = starts[job.id]
    assert s[1] - s[0] >= 0.05 - EARLY
    assert s[2] - s[1] >= 0.1 - EARLY
    assert len(starts[quitter.id]) == 1
    stored = await queue.get_job(quitter.id)
    assert stored is not None and stored.attempts_made == 1
    assert stored.failed_reason == "bounced"


async def test_worker_backoff_strategy_handles_custom_type(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    calls: list[tuple[int, str]] = []
    starts: list[float] = []

    def strategy(attempts_made: int, error: BaseException, job: Any) -> float:
        calls.append((attempts_made, str(error)))
        return 0.15

    async def flaky(job: Job) -> Any:
        starts.append(time.monotonic())
        if len(starts) == 1:
            raise RuntimeError("first fails")
        return "ok"

    async with worker(queue_name, flaky, redis_url, backoff_strategy=strategy):
        job = await queue.add("send", {}, attempts=2, backoff={"type": "custom"})
        assert await job.wait_until_finished(timeout=10) == "ok"

    assert calls == [(1, "first fails")]
    assert starts[1] - starts[0] >= 0.15 - EARLY


# --------------------------------------------------------------------------- special errors


async def test_unrecoverable_error_fails_at_once(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    calls = 0
    failed: list[BaseException] = []

    async def picky(job: Job) -> Any:
        nonlocal calls
        calls += 1
        raise UnrecoverableError("bad address")

    w = worker(queue_name, picky, redis_url)
    w.on("failed", lambda job, exc: failed.append(exc))
    async with w:
        job = await queue.add("send", {}, attempts=5, backoff=0.05)
        await wait_for(lambda: state_is(queue, job.id, "failed"), what="failed")

    assert calls == 1
    assert len(failed) == 1 and isinstance(failed[0], UnrecoverableError)
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.failed_reason == "bad address"
    assert stored.attempts_made == 1


async def test_delayed_error_after_move_to_delayed_runs_again_later(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    runs: list[tuple[float, int]] = []
    state_inside: list[str] = []
    failed: list[Any] = []

    async def later(job: Job) -> Any:
        runs.append((time.monotonic(), job.attempts_made))
        if len(runs) == 1:
            await job.move_to_delayed(0.3)
            state_inside.append(await queue.get_job_state(job.id))
            raise DelayedError()
        return "second run"

    w = worker(queue_name, later, redis_url)
    w.on("failed", lambda job, exc: failed.append(exc))
    async with w:
        job = await queue.add("send", {}, attempts=1)
        assert await job.wait_until_finished(timeout=10) == "second run"

    assert state_inside == ["delayed"]
    assert len(runs) == 2
    assert runs[1][0] - runs[0][0] >= 0.3 - EARLY
    assert runs[1][0] - runs[0][0] < 0.3 + LATE
    assert runs[1][1] == 0, "the delay must not count as an attempt"
    assert failed == []
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1


async def test_rate_limit_error_hands_job_back_and_pauses_the_queue(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    runs: list[tuple[str, float, int]] = []
    limited = asyncio.Event()
    limited_at = 0.0
    w: Worker

    async def limited_proc(job: Job) -> Any:
        nonlocal limited_at
        runs.append((job.id, time.monotonic(), job.attempts_made))
        if len(runs) == 1:
            limited_at = time.monotonic()
            await w.rate_limit(0.3)
            limited.set()
            raise RateLimitError()
        return "sent"

    w = worker(queue_name, limited_proc, redis_url, concurrency=2)
    async with w:
        first = await queue.add("send", {}, attempts=1)
        await wait_event(limited, what="rate limit")
        await wait_for(lambda: state_is(queue, first.id, "waiting"), timeout=2,
                       what="job back in waiting")
        second = await queue.add("send", {}, attempts=1)
        assert await first.wait_until_finished(timeout=10) == "sent"
        assert await second.wait_until_finished(timeout=10) == "sent"

    assert [r[0] for r in runs] == [first.id, first.id, second.id]
    for job_id, started, attempts_made in runs[1:]:
        assert started >= limited_at + 0.3 - EARLY, (job_id, started - limited_at)
        assert attempts_made == 0
    assert runs[1][1] - limited_at < 0.3 + LATE
    stored = await queue.get_job(first.id)
    assert stored is not None and stored.attempts_made == 1


async def test_timeout_option_fails_the_attempt_and_retries(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    failed: list[BaseException] = []
    runs = 0

    async def slow(job: Job) -> Any:
        nonlocal runs
        runs += 1
        await asyncio.sleep(5)  # the work that overruns its timeout
        return "too late"

    w = worker(queue_name, slow, redis_url)
    w.on("failed", lambda job, exc: failed.append(exc))
    t0 = time.monotonic()
    async with w:
        job = await queue.add("send", {}, attempts=2, timeout=0.2)
        await wait_for(lambda: state_is(queue, job.id, "failed"), what="failed")
    elapsed = time.monotonic() - t0

    assert runs == 2
    assert len(failed) == 2 and all(isinstance(e, JobTimeoutError) for e in failed)
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.failed_reason == str(failed[-1])
    assert "timed out" in stored.failed_reason
    assert stored.attempts_made == 2
    assert elapsed < 3


# --------------------------------------------------------------------------- concurrency


async def test_concurrency_five_runs_exactly_five_at_once(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    probe = Probe()
    full = asyncio.Event()
    release = asyncio.Event()

    async def hold(job: Job) -> Any:
        probe.enter(job.id)
        try:
            if probe.running >= 5:
                full.set()
            await release.wait()
        finally:
            probe.leave()
        return job.id

    try:
        async with worker(queue_name, hold, redis_url, concurrency=5):
            jobs = [await queue.add("hold", {"i": i}) for i in range(8)]
            await wait_event(full, what="five running")
            counts = await queue.get_job_counts("active", "waiting")
            assert counts == {"active": 5, "waiting": 3}
            assert probe.running == 5
            release.set()
            await wait_for(lambda: probe.done == 8, what="all jobs done")
            await wait_for(lambda: state_is(queue, jobs[-1].id, "completed"), what="completed")
    finally:
        release.set()
    assert probe.max_running == 5
    assert (await queue.get_job_counts("completed"))["completed"] == 8


async def test_concurrency_one_runs_jobs_one_by_one_in_fifo_order(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    probe = Probe()

    async def work(job: Job) -> Any:
        probe.enter(job.id)
        await asyncio.sleep(0.01)  # a little work, so overlapping runs would show
        probe.leave()

    jobs = [await queue.add("fifo", {"i": i}) for i in range(6)]
    async with worker(queue_name, work, redis_url, concurrency=1):
        await wait_for(lambda: probe.done == 6, what="all done")
    assert probe.order == [j.id for j in jobs]
    assert probe.max_running == 1


async def test_priorities_lowest_number_first_and_unprioritized_before_all(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    probe = Probe()

    async def work(job: Job) -> Any:
        probe.enter(job.id)
        probe.leave()

    p3 = await queue.add("p3", {}, priority=3)
    p1 = await queue.add("p1", {}, priority=1)
    n1 = await queue.add("n1", {})
    p2 = await queue.add("p2", {}, priority=2)
    n2 = await queue.add("n2", {})
    p1b = await queue.add("p1b", {}, priority=1)
    async with worker(queue_name, work, redis_url, concurrency=1):
        await wait_for(lambda: probe.done == 6, what="all done")
    assert probe.order == [n1.id, n2.id, p1.id, p1b.id, p2.id, p3.id]


# --------------------------------------------------------------------------- rate limits


async def _run_limited(redis_url: str, queue_name: str, queue: AsyncQueue,
                       n_workers: int) -> Probe:
    probe = Probe()

    async def work(job: Job) -> Any:
        probe.enter(job.id)
        probe.leave()

    workers = [worker(queue_name, work, redis_url, concurrency=10,
                      limiter={"max": 5, "duration": 0.5}) for _ in range(n_workers)]
    for w in workers:
        await w.start()
    try:
        await queue.add_bulk([{"name": "lim", "data": {"i": i}} for i in range(15)])
        await wait_for(lambda: probe.done == 15, timeout=10, what="15 jobs done")
    finally:
        for w in workers:
            await w.close()
    return probe


async def test_limiter_caps_starts_per_window(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    probe = await _run_limited(redis_url, queue_name, queue, n_workers=1)
    assert max_in_window(probe.starts, 0.5 - 0.02) <= 5, probe.starts
    assert max(probe.starts) - min(probe.starts) >= 1.0 - 0.05


async def test_limiter_is_global_across_workers(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    probe = await _run_limited(redis_url, queue_name, queue, n_workers=2)
    assert max_in_window(probe.starts, 0.5 - 0.02) <= 5, probe.starts
    assert max(probe.starts) - min(probe.starts) >= 1.0 - 0.05


async def test_global_concurrency_across_two_workers(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    probe = Probe()

    async def work(job: Job) -> Any:
        probe.enter(job.id)
        await asyncio.sleep(0.05)  # work long enough for runs to overlap
        probe.leave()

    await queue.set_global_concurrency(2)
    await queue.add_bulk([{"name": "gc", "data": {"i": i}} for i in range(10)])
    async with worker(queue_name, work, redis_url, concurrency=5), \
            worker(queue_name, work, redis_url, concurrency=5):
        await wait_for(lambda: probe.done == 10, what="10 jobs done")
    assert probe.max_running == 2


# --------------------------------------------------------------------------- wake-ups


async def test_idle_worker_picks_up_a_new_job_quickly(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    started: dict[str, float] = {}
    drained = asyncio.Event()

    async def work(job: Job) -> Any:
        started[job.id] = time.monotonic()

    w = worker(queue_name, work, redis_url)  # default drain_delay: blocks 5 s when idle
    w.on("drained", drained.set)
    async with w:
        for _ in range(3):
            drained.clear()
            await queue.add("warm", {})
            await wait_event(drained, what="drained")  # the worker is now idle-blocked
            t0 = time.monotonic()
            job = await queue.add("wake", {})
            await wait_for(lambda: job.id in started, timeout=5, what="pickup",  # noqa: B023
                           interval=0.002)
            assert started[job.id] - t0 < 0.5


async def test_delayed_job_starts_on_time_while_worker_is_blocked(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    started: dict[str, float] = {}
    drained = asyncio.Event()

    async def work(job: Job) -> Any:
        started[job.id] = time.monotonic()

    w = worker(queue_name, work, redis_url)
    w.on("drained", drained.set)
    async with w:
        await queue.add("warm", {})
        await wait_event(drained, what="drained")
        t0 = time.monotonic()
        job = await queue.add("later", {}, delay=0.3)
        assert await queue.get_job_state(job.id) == "delayed"
        await wait_for(lambda: job.id in started, timeout=5, what="delayed job start",
                       interval=0.002)
    lag = started[job.id] - t0
    assert 0.3 - EARLY <= lag < 0.3 + LATE, lag
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.processed_on is not None
    assert (stored.processed_on - stored.timestamp).total_seconds() >= 0.3 - 0.05


async def test_small_drain_delay_keeps_working(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    started: dict[str, float] = {}
    errors: list[BaseException] = []

    async def work(job: Job) -> Any:
        started[job.id] = time.monotonic()
        return job.data

    w = worker(queue_name, work, redis_url, drain_delay=0.02)
    w.on("error", errors.append)
    async with w:
        first = await queue.add("now", {"i": 1})
        assert await first.wait_until_finished(timeout=5) == {"i": 1}
        t0 = time.monotonic()
        later = await queue.add("later", {"i": 2}, delay=0.2)
        assert await later.wait_until_finished(timeout=5) == {"i": 2}
        again = await queue.add("again", {"i": 3})
        assert await again.wait_until_finished(timeout=5) == {"i": 3}
    assert 0.2 - EARLY <= started[later.id] - t0 < 0.2 + LATE
    assert errors == []


@pytest.mark.parametrize("bad", [0, -1, "1", float("nan")])
def test_bad_drain_delay_raises(redis_url: str, queue_name: str, bad: Any) -> None:
    async def work(job: Job) -> None:
        return None

    with pytest.raises(ValueError, match="drain_delay"):
        Worker(queue_name, work, connection=redis_url, drain_delay=bad)


# --------------------------------------------------------------------------- locks and stalls


async def _kill_worker_holding_a_job(app: AppProcess, queue: AsyncQueue) -> Job:
    job = await queue.add("stuck", {"block": 60})
    await wait_for(lambda: app.started(job.id), timeout=15, what="job start in subprocess")
    assert await queue.get_job_state(job.id) == "active"
    app.signal(signal.SIGKILL)
    app.wait_exit(10)
    return job


async def test_job_of_a_killed_worker_is_recovered_as_stalled(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis,
    tmp_path: Any,
) -> None:
    app = AppProcess(queue_name, redis_url, tmp_path, lock_duration=1, stalled_interval=0.5)
    try:
        job = await _kill_worker_holding_a_job(app, queue)
    finally:
        app.close()

    stalled: list[str] = []
    done = asyncio.Event()

    async def recover(j: Job) -> Any:
        return {"recovered": j.id}

    # A short drain_delay: closing right after this recovery was seen to wait out the
    # idle block (drain_delay) instead of returning at once.
    w = worker(queue_name, recover, redis_url, lock_duration=1, stalled_interval=0.5,
               drain_delay=1)
    w.on("stalled", stalled.append)
    w.on("completed", lambda j, r: done.set())
    async with w:
        await wait_event(done, timeout=10, what="recovered job completed")

    assert stalled == [job.id]
    assert await queue.get_job_state(job.id) == "completed"
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.return_value == {"recovered": job.id}
    assert redis_client.hget(job_key(queue_name, job.id), "stc") == b"1"


async def test_stalled_job_fails_when_max_stalled_count_is_zero(
    redis_url: str, queue_name: str, queue: AsyncQueue, tmp_path: Any,
) -> None:
    app = AppProcess(queue_name, redis_url, tmp_path, lock_duration=1, stalled_interval=0.5,
                     max_stalled_count=0)
    try:
        job = await _kill_worker_holding_a_job(app, queue)
    finally:
        app.close()

    ran: list[str] = []
    failed: list[tuple[str, BaseException]] = []

    async def never(j: Job) -> Any:
        ran.append(j.id)

    w = worker(queue_name, never, redis_url, lock_duration=1, stalled_interval=0.5,
               max_stalled_count=0, drain_delay=1)
    w.on("failed", lambda j, exc: failed.append((j.id, exc)))
    async with w:
        await wait_for(lambda: state_is(queue, job.id, "failed"), timeout=10, what="failed")

    assert ran == []
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.failed_reason == "job stalled more than allowable limit"
    assert [f[0] for f in failed] == [job.id]


async def _assert_kept_lock(redis_url: str, queue_name: str, queue: AsyncQueue,
                            redis_client: redis.Redis, processor: Any) -> None:
    calls: list[str] = []
    stalled: list[str] = []
    lost_while_running: list[Any] = []
    running = False

    async def counted(job: Job) -> Any:
        nonlocal running
        calls.append(job.id)
        running = True
        try:
            return await processor(job)
        finally:
            running = False

    def on_lost(*args: Any) -> None:
        # (a lock_lost racing the job's own finish is covered by
        # test_no_spurious_lock_lost_when_jobs_finish)
        if running:
            lost_while_running.append(args)

    opts = {"lock_duration": 1, "stalled_interval": 0.2}
    checker = worker(queue_name, counted, redis_url, **opts)
    holder = worker(queue_name, counted, redis_url, **opts)
    for w in (checker, holder):
        w.on("stalled", stalled.append)
        w.on("lock_lost", on_lost)
    async with checker, holder:
        job = await queue.add("long", {})
        assert await job.wait_until_finished(timeout=15) == "done"

    assert calls == [job.id]
    assert stalled == []
    assert lost_while_running == []
    assert redis_client.hget(job_key(queue_name, job.id), "stc") is None
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1


async def test_long_job_keeps_its_lock_while_others_check_for_stalls(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    async def long(job: Job) -> Any:
        await asyncio.sleep(2.5)  # the work: 2.5 lock durations
        return "done"

    await _assert_kept_lock(redis_url, queue_name, queue, redis_client, long)


async def test_cpu_bound_async_processor_keeps_its_lock(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    async def hog(job: Job) -> Any:
        end = time.monotonic() + 2.5  # never yields to the loop for 2.5 lock durations
        while time.monotonic() < end:
            pass
        return "done"

    await _assert_kept_lock(redis_url, queue_name, queue, redis_client, hog)


async def test_no_spurious_lock_lost_when_jobs_finish(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    lost: list[Any] = []
    completed: set[str] = set()

    async def quick(job: Job) -> Any:
        await asyncio.sleep(0.002)  # a tiny bit of work
        return job.id

    # Renewals every 25 ms while ten slots keep finishing jobs.
    w = worker(queue_name, quick, redis_url, concurrency=10, lock_duration=0.05)
    w.on("lock_lost", lambda *args: lost.append(args))
    w.on("completed", lambda job, result: completed.add(job.id))
    await queue.add_bulk([{"name": "q", "data": {"i": i}} for i in range(300)])
    async with w:
        await wait_for(lambda: len(completed) == 300, timeout=30, what="300 completions")
    assert (await queue.get_job_counts("completed"))["completed"] == 300
    # Every job completed normally, so none of them lost its lock.
    assert [a for a in lost if (a[0] if isinstance(a[0], str) else a[0].id) in completed] == []


async def _run_with_lock_deleted(redis_url: str, queue_name: str, queue: AsyncQueue,
                                 redis_client: redis.Redis) -> dict[str, Any]:
    started = asyncio.Event()
    proceed = asyncio.Event()
    out: dict[str, Any] = {"progress_errors": [], "lost": [], "completed": []}

    async def work(job: Job) -> Any:
        started.set()
        await proceed.wait()
        try:
            await job.update_progress(50)
        except JobLockError as exc:
            out["progress_errors"].append(exc)
        return "should not be stored"

    w = worker(queue_name, work, redis_url, lock_duration=5)
    w.on("lock_lost", lambda *args: out["lost"].append(args))
    w.on("completed", lambda job, result: out["completed"].append(job.id))
    try:
        async with w:
            job = await queue.add("fenced", {})
            out["job"] = job
            await wait_event(started, what="processor start")
            assert redis_client.delete(f"{job_key(queue_name, job.id)}:lock") == 1
            proceed.set()
            await wait_for(lambda: any(isinstance(a[0], Job) for a in out["lost"]),
                           what="lock_lost for the refused finish")
            out["state"] = await queue.get_job_state(job.id)
            out["stored"] = await queue.get_job(job.id)
    finally:
        proceed.set()
    return out


async def test_fencing_refuses_writes_after_the_lock_is_gone(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    out = await _run_with_lock_deleted(redis_url, queue_name, queue, redis_client)
    job = out["job"]
    assert len(out["progress_errors"]) == 1
    assert isinstance(out["progress_errors"][0], JobLockError)
    assert out["state"] == "active"  # not completed: left for the stalled check
    stored = out["stored"]
    assert stored.return_value is None
    assert stored.progress == 0
    assert stored.finished_on is None
    assert await queue.get_job_state(job.id) != "completed"


async def test_refused_completion_emits_no_completed_event(
    redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis
) -> None:
    out = await _run_with_lock_deleted(redis_url, queue_name, queue, redis_client)
    assert out["state"] == "active"
    assert out["completed"] == []


# --------------------------------------------------------------------------- events


async def test_local_events_with_plain_and_coroutine_callbacks(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    plain: list[tuple[Any, ...]] = []
    coro: list[tuple[Any, ...]] = []
    events = ("active", "progress", "completed", "failed", "drained", "closed")

    def plain_cb(name: str) -> Any:
        return lambda *args: plain.append((name, *args))

    def coro_cb(name: str) -> Any:
        async def cb(*args: Any) -> None:
            await asyncio.sleep(0)
            coro.append((name, *args))
        return cb

    async def work(job: Job) -> Any:
        await job.update_progress({"pct": 50})
        if job.data.get("fail_first") and job.attempts_made == 0:
            raise KeyError("first attempt")
        if job.data.get("always_fail"):
            raise RuntimeError("always")
        return job.data["i"]

    ok = await queue.add("ok", {"i": 1})
    flaky = await queue.add("flaky", {"i": 2, "fail_first": True}, attempts=2)
    bad = await queue.add("bad", {"i": 3, "always_fail": True})
    w = worker(queue_name, work, redis_url)
    for name in events:
        w.on(name, plain_cb(name))
        w.on(name, coro_cb(name))
    async with w:
        await wait_for(lambda: any(e[0] == "drained" for e in plain), what="drained")
        await wait_for(lambda: any(e[0] == "drained" for e in coro), what="async drained")
        assert not any(e[0] == "closed" for e in plain)
    await wait_for(lambda: any(e[0] == "closed" for e in coro), what="async closed")

    for record in (plain, coro):
        def of(name: str, rec: list[tuple[Any, ...]] = record) -> list[tuple[Any, ...]]:
            return [e[1:] for e in rec if e[0] == name]

        runs = Counter({ok.id: 1, flaky.id: 2, bad.id: 1})
        assert Counter(a[0].id for a in of("active")) == runs
        assert all(isinstance(a[0], Job) for a in of("active"))
        assert Counter(a[0].id for a in of("progress")) == runs
        assert all(a[1] == {"pct": 50} for a in of("progress"))
        assert [(a[0].id, a[1]) for a in of("completed")] == [(ok.id, 1), (flaky.id, 2)]
        failed = of("failed")
        assert [a[0].id for a in failed] == [flaky.id, bad.id]
        assert isinstance(failed[0][1], KeyError) and isinstance(failed[1][1], RuntimeError)
        assert of("drained") == [()]
        assert of("closed") == [()]
        assert [e[0] for e in record][-1] == "closed"


async def test_error_event_with_plain_and_coroutine_callbacks(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    plain: list[BaseException] = []
    coro: list[BaseException] = []

    class StrategyBroke(Exception):
        pass

    def broken(attempts_made: int, error: BaseException, job: Any) -> float:
        raise StrategyBroke("no idea")

    async def on_error(exc: BaseException) -> None:
        coro.append(exc)

    async def flaky(job: Job) -> Any:
        raise RuntimeError("attempt failed")

    w = worker(queue_name, flaky, redis_url, backoff_strategy=broken)
    w.on("error", plain.append)
    w.on("error", on_error)
    async with w:
        job = await queue.add("send", {}, attempts=3, backoff={"type": "custom"})
        await wait_for(lambda: state_is(queue, job.id, "failed"), what="failed")
        await wait_for(lambda: coro, what="async error callback")
    assert any(isinstance(e, StrategyBroke) for e in plain)
    assert any(isinstance(e, StrategyBroke) for e in coro)
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.failed_reason == "attempt failed"


# --------------------------------------------------------------------------- shutdown


async def test_close_force_hands_active_jobs_back_at_once(
    redis_url: str, queue_name: str, queue: AsyncQueue
) -> None:
    started = asyncio.Event()
    never = asyncio.Event()

    async def stuck(job: Job) -> Any:
        started.set()
        await never.wait()

    w = Worker(queue_name, stuck, connection=redis_url, shutdown_grace=30)
    await w.start()
    try:
        job = await queue.add("stuck", {}, attempts=1)
        await wait_event(started, what="processor start")
        t0 = time.monotonic()
        await w.close(force=True)
        assert time.monotonic() - t0 < 3
    finally:
        never.set()
        await w.close()

    assert await queue.get_job_state(job.id) == "waiting"
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 0 and stored.failed_reason is None

    async def finish(j: Job) -> Any:
        return "finished elsewhere"

    async with worker(queue_name, finish, redis_url):
        assert await job.wait_until_finished(timeout=10) == "finished elsewhere"
