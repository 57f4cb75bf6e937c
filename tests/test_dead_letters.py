"""Dead letters: the queue setting, the copy inside the failing script, replay and purge."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from _worker_helpers import AppProcess, wait_for

from pyqueue import (
    AsyncQueue,
    DeadLetterQueueError,
    InvalidQueueNameError,
    JobTimeoutError,
    Queue,
    UnrecoverableError,
    Worker,
    _ops_dlq,
)
from pyqueue import _scripts as S
from pyqueue._plan import single
from pyqueue._runner import run_sync
from pyqueue.testing import run_until_idle_async


@pytest.fixture
def queue(redis_url: str, queue_name: str) -> Iterator[Queue]:
    with Queue(queue_name, connection=redis_url) as q:
        yield q


@pytest.fixture
def dlq(redis_url: str, queue_name: str) -> Iterator[Queue]:
    with Queue(f"{queue_name}-dead", connection=redis_url) as q:
        yield q


@pytest.fixture
async def aqueue(redis_url: str, queue_name: str) -> AsyncIterator[AsyncQueue]:
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        yield q


async def run(queue_name: str, processor: Any, redis_url: str, **options: Any) -> None:
    await run_until_idle_async(queue_name, processor, connection=redis_url,
                               raise_on_failure=False, timeout=20, **options)


# --- the setting ------------------------------------------------------------------

def test_set_get_and_clear_the_dead_letter_queue(queue: Queue, dlq: Queue,
                                                 redis_client: redis.Redis) -> None:
    assert queue.get_dead_letter_queue() is None
    queue.set_dead_letter_queue(dlq.name)
    assert queue.get_dead_letter_queue() == dlq.name
    assert redis_client.hget(f"bull:{queue.name}:meta", "pq:dlq") == dlq.name.encode()
    assert redis_client.hget(f"bull:{dlq.name}:meta", "pq:isdlq") == b"1"
    queue.set_dead_letter_queue(None)
    assert queue.get_dead_letter_queue() is None
    queue.set_dead_letter_queue(dlq)  # a Queue object under the same prefix
    assert queue.get_dead_letter_queue() == dlq.name


async def test_async_queue_sets_it_too(aqueue: AsyncQueue, queue_name: str) -> None:
    await aqueue.set_dead_letter_queue(f"{queue_name}-dead")
    assert await aqueue.get_dead_letter_queue() == f"{queue_name}-dead"
    with pytest.raises(DeadLetterQueueError):
        await aqueue.set_dead_letter_queue(queue_name)


@pytest.mark.parametrize("bad", ["", "other:dead", 42])
def test_bad_names_are_refused_before_any_write(queue: Queue, bad: Any,
                                                redis_client: redis.Redis) -> None:
    with pytest.raises(DeadLetterQueueError) as info:
        queue.set_dead_letter_queue(bad)
    assert isinstance(info.value, ValueError)
    assert not redis_client.exists(f"bull:{queue.name}:meta")


def test_own_queue_other_prefix_and_other_slot_are_refused(
        queue: Queue, redis_url: str, queue_name: str, redis_client: redis.Redis) -> None:
    with pytest.raises(DeadLetterQueueError, match="its own"):
        queue.set_dead_letter_queue(queue_name)
    with Queue(f"{queue_name}-dead", connection=redis_url, prefix="other") as elsewhere, \
            pytest.raises(DeadLetterQueueError, match="prefix"):
        queue.set_dead_letter_queue(elsewhere)
    with Queue(f"{{{queue_name}}}", connection=redis_url) as tagged:
        with pytest.raises(DeadLetterQueueError, match="slot"):
            tagged.set_dead_letter_queue("dead")
        tagged.set_dead_letter_queue(f"{{{queue_name}}}-dead")  # same hash tag: fine
    assert not redis_client.exists(f"bull:{queue_name}:meta", f"bull:{queue_name}-dead:meta")


def test_dead_letter_operations_need_a_dlq(queue: Queue) -> None:
    with pytest.raises(DeadLetterQueueError, match="no dead-letter queue"):
        queue.replay_dead_letters()
    with pytest.raises(DeadLetterQueueError):
        queue.get_dead_letters()
    with pytest.raises(DeadLetterQueueError):
        queue.purge_dead_letters()


def test_bad_filters_are_refused(queue: Queue, dlq: Queue) -> None:
    queue.set_dead_letter_queue(dlq.name)
    with pytest.raises(ValueError, match="since"):
        queue.replay_dead_letters(since="yesterday")
    with pytest.raises(ValueError, match="limit"):
        queue.replay_dead_letters(limit=-1)
    with pytest.raises(ValueError, match="rate"):
        queue.replay_dead_letters(rate=0)
    with pytest.raises(InvalidQueueNameError):
        Queue("a:b")


# --- the copy -----------------------------------------------------------------------

async def test_exhausted_job_is_copied_with_the_documented_shape(
        queue: Queue, dlq: Queue, redis_url: str, queue_name: str) -> None:
    queue.set_dead_letter_queue(dlq.name)
    data = {"to": "a@example.com", "n": 12345678901234567, "empty": [], "nested": {"x": 1.5}}
    job = queue.add("welcome", data, attempts=2, backoff=0, priority=3, job_id="mail-1")

    async def boom(j: Any) -> None:
        raise RuntimeError("smtp down")

    await run(queue_name, boom, redis_url)
    assert queue.get_job_state(job.id) == "failed"  # the original stays in failed
    (entry,) = queue.get_dead_letters()
    assert entry.queue_name == dlq.name and entry.name == "welcome"
    assert dlq.get_job_state(entry.id) == "waiting"
    d = entry.data
    assert d["queue"] == queue_name and d["job_id"] == "mail-1"
    assert d["data"] == data  # byte-exact big int, empty list kept
    assert d["opts"]["attempts"] == 2 and d["opts"]["priority"] == 3
    assert d["failed_reason"] == "smtp down" and d["attempts_made"] == 2
    assert isinstance(d["stacktrace"], list) and "RuntimeError" in d["stacktrace"][0]
    assert d["kind"] == "attempts-exhausted"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.finished_on is not None
    assert d["failed_at"] == int(stored.finished_on.timestamp() * 1000)


async def test_each_way_of_failing_for_good_is_dead_lettered(
        queue: Queue, dlq: Queue, redis_url: str, queue_name: str) -> None:
    queue.set_dead_letter_queue(dlq.name)
    retried = queue.add("retried", {}, attempts=3, backoff=0)
    fatal = queue.add("fatal", {}, attempts=5)
    slow = queue.add("slow", {}, attempts=1, timeout=0.2)
    removed = queue.add("removed", {}, remove_on_fail=True)
    cancelled = queue.add("cancelled", {})
    queue.cancel_job(cancelled.id)  # a cancellation is not a dead letter

    async def process(j: Any) -> None:
        if j.name == "fatal":
            raise UnrecoverableError("bad address")
        if j.name == "slow":
            await asyncio.sleep(30)  # past its timeout: the worker cancels it
        raise ValueError("nope")

    await run(queue_name, process, redis_url)
    kinds = {e.data["job_id"]: e.data["kind"] for e in queue.get_dead_letters()}
    assert kinds == {retried.id: "attempts-exhausted", fatal.id: "unrecoverable",
                     slow.id: "timeout", removed.id: "attempts-exhausted"}
    timed_out = next(e for e in queue.get_dead_letters() if e.data["job_id"] == slow.id)
    assert timed_out.data["failed_reason"] == f"job {slow.id} timed out after 0.2 s"
    assert JobTimeoutError.__name__ in timed_out.data["stacktrace"][0]
    assert queue.get_job(removed.id) is None  # remove_on_fail still applies
    assert queue.get_job_state(cancelled.id) == "failed"


async def test_retried_attempts_are_not_dead_lettered(queue: Queue, dlq: Queue,
                                                      redis_url: str, queue_name: str) -> None:
    queue.set_dead_letter_queue(dlq.name)
    job = queue.add("flaky", {}, attempts=3, backoff=0)
    calls: list[int] = []

    async def flaky(j: Any) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("again")
        return "ok"

    await run(queue_name, flaky, redis_url)
    assert queue.get_job_state(job.id) == "completed"
    assert queue.get_dead_letters() == [] and dlq.get_job_counts("waiting")["waiting"] == 0


async def test_no_setting_no_copy_and_clearing_stops_copies(
        queue: Queue, dlq: Queue, redis_url: str, queue_name: str) -> None:
    queue.add("a", {})

    async def boom(j: Any) -> None:
        raise RuntimeError("x")

    await run(queue_name, boom, redis_url)
    queue.set_dead_letter_queue(dlq.name)
    queue.set_dead_letter_queue(None)
    queue.add("b", {})
    await run(queue_name, boom, redis_url)
    assert dlq.get_job_counts("waiting")["waiting"] == 0
    assert queue.get_job_counts("failed")["failed"] == 2


async def test_job_failed_by_the_stalled_check_is_dead_lettered(
        queue: Queue, dlq: Queue, aqueue: AsyncQueue, redis_url: str, queue_name: str,
        tmp_path: Any) -> None:
    queue.set_dead_letter_queue(dlq.name)
    app = AppProcess(queue_name, redis_url, tmp_path, lock_duration=1, stalled_interval=0.5,
                     max_stalled_count=0)
    try:
        job = await aqueue.add("stuck", {"block": 60})
        await wait_for(lambda: app.started(job.id), timeout=15, what="job start in subprocess")
        app.signal(signal.SIGKILL)  # kill -9 while it holds the job
        app.wait_exit(10)
    finally:
        app.close()

    async def never(j: Any) -> None:
        raise AssertionError("a job failed by the stalled check must not run")

    w = Worker(queue_name, never, connection=redis_url, lock_duration=1, stalled_interval=0.5,
               max_stalled_count=0, drain_delay=1, autorun=False)
    async with w:
        await wait_for(lambda: queue.get_job_state(job.id) == "failed", timeout=10,
                       what="failed by the stalled check")
    (entry,) = queue.get_dead_letters()
    assert entry.data["job_id"] == job.id and entry.data["kind"] == "stalled"
    assert entry.data["failed_reason"] == "job stalled more than allowable limit"
    assert entry.data["data"] == {"block": 60}


async def test_a_damaged_dlq_does_not_undo_the_failure(
        queue: Queue, dlq: Queue, redis_url: str, queue_name: str,
        redis_client: redis.Redis) -> None:
    queue.set_dead_letter_queue(dlq.name)
    redis_client.set(f"bull:{dlq.name}:wait", "not a list")
    try:
        job = queue.add("x", {})

        async def boom(j: Any) -> None:
            raise RuntimeError("x")

        await run(queue_name, boom, redis_url)
        assert queue.get_job_state(job.id) == "failed"
        assert b"key wait is a string" in redis_client.hget(f"bull:{queue_name}:{job.id}",
                                                            "pqdle")
    finally:  # the session's server is shared: `pyqueue info` lists every queue
        redis_client.delete(f"bull:{dlq.name}:wait")


async def test_dlq_events_and_wake_up(queue: Queue, dlq: Queue, redis_url: str,
                                      queue_name: str, redis_client: redis.Redis) -> None:
    queue.set_dead_letter_queue(dlq.name)
    queue.add("x", {})

    async def boom(j: Any) -> None:
        raise RuntimeError("x")

    await run(queue_name, boom, redis_url)
    events = [dict(fields)[b"event"] for _, fields in
              redis_client.xrange(f"bull:{dlq.name}:events")]
    assert events == [b"added", b"waiting"]
    assert redis_client.zscore(f"bull:{dlq.name}:marker", "0") == 0


# --- replay and purge -----------------------------------------------------------------

def _fail_all(queue: Queue, jobs: list[tuple[str, dict[str, Any], dict[str, Any]]],
              reason_of: Any, redis_url: str) -> None:
    for name, data, opts in jobs:
        queue.add(name, data, **opts)

    async def boom(j: Any) -> None:
        raise UnrecoverableError(reason_of(j))

    asyncio.run(run(queue.name, boom, redis_url))


def test_replay_moves_entries_back_with_new_ids_and_fresh_attempts(
        queue: Queue, dlq: Queue, redis_url: str) -> None:
    queue.set_dead_letter_queue(dlq.name)
    _fail_all(queue, [("a", {"i": 1}, {"attempts": 3, "job_id": "custom-1", "priority": 2}),
                      ("b", {"i": 2}, {"attempts": 3})], lambda j: f"no {j.name}", redis_url)
    assert dlq.get_job_counts("waiting")["waiting"] == 2
    new_ids = queue.replay_dead_letters()
    assert len(new_ids) == 2 and "custom-1" not in new_ids
    assert dlq.get_job_counts("waiting")["waiting"] == 0 and queue.get_dead_letters() == []
    # oldest entry first: "b" (priority 0) failed before "a" (priority 2)
    jobs = [queue.get_job(i) for i in new_ids]
    assert [(j.name, j.data, j.attempts_made, j.attempts) for j in jobs if j] == \
        [("b", {"i": 2}, 0, 3), ("a", {"i": 1}, 0, 3)]
    assert queue.get_job_state(new_ids[0]) == "waiting"
    assert queue.get_job_state(new_ids[1]) == "prioritized"
    assert queue.get_job_state("custom-1") == "failed"  # the original stays

    async def ok(j: Any) -> str:
        return "fixed"

    asyncio.run(run(queue.name, ok, redis_url))
    assert all(queue.get_job_state(i) == "completed" for i in new_ids)


def test_replay_filters_and_limit(queue: Queue, dlq: Queue, redis_url: str,
                                  redis_client: redis.Redis) -> None:
    queue.set_dead_letter_queue(dlq.name)
    _fail_all(queue, [("welcome", {"i": 1}, {}), ("reset", {"i": 2}, {}),
                      ("welcome", {"i": 3}, {}), ("welcome", {"i": 4}, {})],
              lambda j: "550 mailbox full" if j.data["i"] % 2 else "421 try later", redis_url)
    # the oldest entry failed "an hour ago"
    first = queue.get_dead_letters(0, 0)[0]
    entry = dict(first.data, failed_at=first.data["failed_at"] - 3_600_000)
    redis_client.hset(f"bull:{dlq.name}:{first.id}", "data", json.dumps(entry))

    assert [e.data["data"]["i"] for e in queue.get_dead_letters(name="welcome")] == [1, 3, 4]
    assert [e.data["data"]["i"] for e in queue.get_dead_letters(failed_reason="550")] == [1, 3]
    recent = queue.get_dead_letters(since=timedelta(minutes=10))
    assert [e.data["data"]["i"] for e in recent] == [2, 3, 4]
    assert [e.data["data"]["i"] for e in queue.get_dead_letters(
        since=datetime.now(timezone.utc) - timedelta(minutes=10), name="welcome")] == [3, 4]
    assert [e.data["data"]["i"] for e in queue.get_dead_letters(1, 2)] == [2, 3]

    assert queue.replay_dead_letters(limit=0) == []
    replayed = queue.replay_dead_letters(name="welcome", failed_reason="550", limit=1)
    (job,) = [queue.get_job(i) for i in replayed]
    assert job is not None and job.data == {"i": 1}
    assert queue.purge_dead_letters(failed_reason="421") == 2
    assert [e.data["data"]["i"] for e in queue.get_dead_letters()] == [3]


def test_replay_with_a_rate_spreads_jobs_out_as_delayed(queue: Queue, dlq: Queue,
                                                        redis_url: str) -> None:
    queue.set_dead_letter_queue(dlq.name)
    _fail_all(queue, [("j", {"i": i}, {}) for i in range(4)], lambda j: "x", redis_url)
    ids = queue.replay_dead_letters(rate=2)  # 2 a second: due at 0, 0.5, 1, 1.5 s
    states = [queue.get_job_state(i) for i in ids]
    assert states == ["waiting", "delayed", "delayed", "delayed"]
    delays = [queue.get_job(i).delay for i in ids[1:]]  # type: ignore[union-attr]
    assert [round(d, 1) for d in delays] == [0.5, 1.0, 1.5]  # due 0.5 s apart


def test_a_dead_letter_queue_shared_by_two_queues(redis_url: str, queue_name: str) -> None:
    with Queue(f"{queue_name}-a", connection=redis_url) as a, \
            Queue(f"{queue_name}-b", connection=redis_url) as b, \
            Queue(f"{queue_name}-dead", connection=redis_url) as dead:
        a.set_dead_letter_queue(dead.name)
        b.set_dead_letter_queue(dead.name)
        _fail_all(a, [("x", {"q": "a"}, {})], lambda j: "x", redis_url)
        _fail_all(b, [("x", {"q": "b"}, {}), ("y", {"q": "b"}, {})], lambda j: "x", redis_url)
        assert [e.data["data"] for e in a.get_dead_letters()] == [{"q": "a"}]
        assert len(b.get_dead_letters()) == 2 and len(dead.get_dead_letters()) == 3
        assert len(a.replay_dead_letters()) == 1 and len(dead.get_dead_letters()) == 2
        # replayed from the DLQ itself, each entry goes back to its own origin
        b.set_dead_letter_queue(None)
        with pytest.raises(DeadLetterQueueError):
            b.replay_dead_letters()
        ids = dead.replay_dead_letters()
        assert [b.get_job_state(i) for i in ids] == ["waiting", "waiting"]
        assert a.get_job_counts("waiting")["waiting"] == 1


def test_an_entry_replayed_elsewhere_meanwhile_is_skipped(
        queue: Queue, dlq: Queue, redis_url: str, redis_client: redis.Redis) -> None:
    # Two replays racing: the script moves an entry only if it is still there.
    queue.set_dead_letter_queue(dlq.name)
    _fail_all(queue, [("j", {"i": i}, {}) for i in range(3)], lambda j: "x", redis_url)
    keys = queue._core.keys
    dkeys, entries = run_sync(queue.client, _ops_dlq.select_plan(keys, _ops_dlq.Filters()))
    assert dlq.remove(entries[1].id)  # gone between the read and the replay
    stale = [_ops_dlq.replay_entry(e, 0) for e in entries]
    reply = run_sync(queue.client, single(S.replay_dead_letters(keys, 0, dlq=dkeys.name,
                                                                 entries=stale)))
    assert [bool(S.text(r)) for r in reply] == [True, False, True]
    assert queue.get_job_counts("waiting")["waiting"] == 2
    assert redis_client.llen(f"bull:{dlq.name}:wait") == 0
    # the same entries again: nothing moves twice
    reply = run_sync(queue.client, single(S.replay_dead_letters(keys, 0, dlq=dkeys.name,
                                                                 entries=stale)))
    assert [S.text(r) for r in reply] == ["", "", ""]
    assert queue.get_job_counts("waiting")["waiting"] == 2


async def test_async_replay_and_purge(aqueue: AsyncQueue, queue_name: str,
                                      redis_url: str) -> None:
    await aqueue.set_dead_letter_queue(f"{queue_name}-dead")
    for i in range(3):
        await aqueue.add("j", {"i": i})

    async def boom(j: Any) -> None:
        raise UnrecoverableError("x")

    await run(queue_name, boom, redis_url)
    entries = await aqueue.get_dead_letters()
    assert [e.data["data"]["i"] for e in entries] == [0, 1, 2]
    assert len(await aqueue.replay_dead_letters(limit=2)) == 2
    assert await aqueue.purge_dead_letters() == 1
    assert await aqueue.get_dead_letters() == []


async def test_an_exception_can_name_its_kind(queue: Queue, dlq: Queue, redis_url: str,
                                              queue_name: str) -> None:
    class Bounced(UnrecoverableError):
        dead_letter_kind = "bounce"

    queue.set_dead_letter_queue(dlq.name)
    queue.add("mail", {})

    async def bounce(j: Any) -> None:
        raise Bounced("550 5.1.1 user unknown")

    await run(queue_name, bounce, redis_url)
    (entry,) = queue.get_dead_letters()
    assert entry.data["kind"] == "bounce"
    assert entry.data["failed_reason"] == "550 5.1.1 user unknown"


async def test_a_grouped_job_is_replayed_into_its_group(queue: Queue, dlq: Queue,
                                                        redis_url: str, queue_name: str) -> None:
    queue.set_dead_letter_queue(dlq.name)
    queue.add("mail", {"to": "a@example.com"}, group="example.com")

    async def boom(j: Any) -> None:
        raise UnrecoverableError("x")

    await run(queue_name, boom, redis_url)
    (entry,) = queue.get_dead_letters()
    assert entry.data["group"] == "example.com"
    (new_id,) = queue.replay_dead_letters()
    job = queue.get_job(new_id)
    assert job is not None and job.group == "example.com"
    assert queue.get_group_counts()["example.com"]["waiting"] == 1


async def test_a_hand_written_setting_naming_the_queue_itself_is_ignored(
        queue: Queue, redis_url: str, queue_name: str, redis_client: redis.Redis) -> None:
    redis_client.hset(f"bull:{queue_name}:meta", "pq:dlq", queue_name)
    job = queue.add("x", {})

    async def boom(j: Any) -> None:
        raise RuntimeError("x")

    await run(queue_name, boom, redis_url)
    assert queue.get_job_counts("waiting", "failed") == {"waiting": 0, "failed": 1}
    assert redis_client.hget(f"bull:{queue_name}:{job.id}", "pqdle") is not None


async def test_an_entry_id_taken_by_a_custom_job_is_skipped(
        queue: Queue, dlq: Queue, redis_url: str, queue_name: str,
        redis_client: redis.Redis) -> None:
    # A BullMQ producer may add a job whose custom id looks like a counter's.
    queue.set_dead_letter_queue(dlq.name)
    redis_client.hset(f"bull:{dlq.name}:1", mapping={"name": "mine", "data": "{}"})
    queue.add("x", {})

    async def boom(j: Any) -> None:
        raise RuntimeError("x")

    await run(queue_name, boom, redis_url)
    (entry,) = queue.get_dead_letters()
    assert entry.id == "2"
    assert redis_client.hget(f"bull:{dlq.name}:1", "name") == b"mine"


async def test_a_job_with_unreadable_data_is_dead_lettered_with_the_text(
        queue: Queue, dlq: Queue, redis_url: str, queue_name: str,
        redis_client: redis.Redis) -> None:
    queue.set_dead_letter_queue(dlq.name)
    job = queue.add("x", {"a": 1})
    redis_client.hset(f"bull:{queue_name}:{job.id}", "data", '{"a": 1')  # cut short

    async def never(j: Any) -> None:
        raise AssertionError("a job whose data cannot be read must not run")

    await run(queue_name, never, redis_url)
    (entry,) = queue.get_dead_letters()
    assert entry.data["kind"] == "damaged"
    assert entry.data["data"] == '{"a": 1'  # kept as text: nothing is lost
