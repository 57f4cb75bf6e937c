"""Queue / AsyncQueue: adding jobs, reading them back, and managing the queue.

Every test runs against the session's real Redis and checks what a user (or a
BullMQ process sharing the queue) sees: return values, states, counts, the
stored hashes in BullMQ's format, and the events stream.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import _helpers_queue
import pytest
import redis
from _helpers_queue import (
    Holder,
    await_until,
    call,
    event_names,
    job_hash,
    process_all,
    queue_keys,
    stream_events,
    worker,
)

from pyqueue import (
    AsyncQueue,
    Job,
    JobState,
    Queue,
    QueueBusyError,
)

PRIORITY_SHIFT = 2**32

Q = Queue | AsyncQueue


# Shared fixtures (defined in _helpers_queue).
anyq = _helpers_queue.anyq
sq = _helpers_queue.sq


def k(queue_name: str, suffix: str) -> str:
    return f"bull:{queue_name}:{suffix}"


def now_ms(r: redis.Redis) -> int:
    sec, usec = r.time()
    return int(sec) * 1000 + int(usec) // 1000


# --- add ------------------------------------------------------------------------


async def test_auto_ids_count_up_from_1_as_strings(anyq: Q, redis_client: redis.Redis,
                                                   queue_name: str) -> None:
    jobs = [await call(anyq.add("n", {"i": i})) for i in range(3)]
    assert [j.id for j in jobs] == ["1", "2", "3"]
    assert all(isinstance(j.id, str) for j in jobs)
    assert redis_client.get(k(queue_name, "id")) == b"3"


async def test_add_returns_job_with_its_fields(anyq: Q, redis_client: redis.Redis) -> None:
    before = now_ms(redis_client)
    job = await call(anyq.add("welcome", {"to": "a@example.com", "n": [1, 2]}, attempts=3))
    after = now_ms(redis_client)
    assert isinstance(job, Job)
    assert job.name == "welcome"
    assert job.data == {"to": "a@example.com", "n": [1, 2]}
    assert job.queue_name == anyq.name
    assert job.opts["attempts"] == 3
    assert job.timestamp is not None
    assert job.timestamp.tzinfo is not None
    assert job.timestamp.utcoffset() == timedelta(0)
    ts = int(job.timestamp.timestamp() * 1000)
    assert before - 5 <= ts <= after + 5
    assert job.priority == 0
    assert job.delay == 0
    assert job.progress == 0
    assert job.attempts_made == 0


async def test_job_hash_is_stored_in_bullmq_format(anyq: Q, redis_client: redis.Redis,
                                                   queue_name: str) -> None:
    job = await call(anyq.add("email", {"to": "x", "ok": True}, attempts=4, priority=7,
                              delay=1.5, backoff={"type": "exponential", "delay": 2},
                              remove_on_complete=10, remove_on_fail={"age": 60, "count": 5}))
    stored = job_hash(redis_client, queue_name, job.id)
    assert stored["name"] == "email"
    assert json.loads(stored["data"]) == {"to": "x", "ok": True}
    assert stored["delay"] == "1500"
    assert stored["priority"] == "7"
    assert stored["timestamp"].isdigit()
    assert int(stored["timestamp"]) == int(job.timestamp.timestamp() * 1000)
    opts = json.loads(stored["opts"])
    assert opts == {
        "attempts": 4,
        "priority": 7,
        "delay": 1500,
        "backoff": {"type": "exponential", "delay": 2000},
        "removeOnComplete": 10,
        "removeOnFail": {"age": 60, "count": 5},
    }
    # The returned job reflects what is stored.
    assert job.opts == opts


async def test_plain_job_hash_has_name_data_opts_timestamp(anyq: Q, redis_client: redis.Redis,
                                                           queue_name: str) -> None:
    job = await call(anyq.add("plain", [1, "two"]))
    stored = job_hash(redis_client, queue_name, job.id)
    assert {"name", "data", "opts", "timestamp"} <= set(stored)
    assert stored["name"] == "plain"
    assert json.loads(stored["data"]) == [1, "two"]
    opts = json.loads(stored["opts"])
    assert "attempts" in opts
    assert set(opts) == {"attempts"}  # unset options are left out
    assert redis_client.lrange(k(queue_name, "wait"), 0, -1) == [job.id.encode()]


async def test_unset_attempts_is_stored_as_zero(anyq: Q, redis_client: redis.Redis,
                                                queue_name: str) -> None:
    # BULLMQ_FORMAT.md: attempts is always present, 0 when unset (as bullmq@6.7.0).
    job = await call(anyq.add("plain", {}))
    assert json.loads(job_hash(redis_client, queue_name, job.id)["opts"])["attempts"] == 0
    assert job.attempts == 1  # still means one attempt


async def test_add_writes_added_and_waiting_events(anyq: Q, redis_client: redis.Redis,
                                                   queue_name: str) -> None:
    job = await call(anyq.add("hello", {}))
    assert stream_events(redis_client, queue_name) == [
        ("added", {"jobId": job.id, "name": "hello"}),
        ("waiting", {"jobId": job.id}),
    ]
    # A worker is woken through the marker.
    assert redis_client.zscore(k(queue_name, "marker"), "0") == 0


async def test_custom_job_id_is_idempotent(anyq: Q, redis_client: redis.Redis,
                                           queue_name: str) -> None:
    first = await call(anyq.add("a", {"v": 1}, job_id="mail-42", attempts=2))
    assert first.id == "mail-42"
    hash_before = job_hash(redis_client, queue_name, "mail-42")
    wait_before = redis_client.lrange(k(queue_name, "wait"), 0, -1)

    second = await call(anyq.add("b", {"v": 2}, job_id="mail-42", attempts=5, priority=3))
    assert second.id == "mail-42"
    assert second.name == "a"
    assert second.data == {"v": 1}
    assert second.opts["attempts"] == 2
    assert job_hash(redis_client, queue_name, "mail-42") == hash_before
    assert redis_client.lrange(k(queue_name, "wait"), 0, -1) == wait_before
    assert redis_client.zcard(k(queue_name, "prioritized")) == 0
    events = stream_events(redis_client, queue_name)
    assert events[-1] == ("duplicated", {"jobId": "mail-42"})
    assert [n for n, _ in events].count("added") == 1
    assert await call(anyq.get_job_counts("waiting")) == {"waiting": 1}


async def test_custom_ids_and_auto_ids_share_the_counter(anyq: Q, redis_client: redis.Redis,
                                                         queue_name: str) -> None:
    await call(anyq.add("a", None, job_id="custom"))
    auto = await call(anyq.add("b", None))
    assert auto.id == "2"
    assert redis_client.get(k(queue_name, "id")) == b"2"


async def test_priority_goes_to_prioritized_with_bullmq_score(
        anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    a = await call(anyq.add("a", None, priority=3))
    b = await call(anyq.add("b", None, priority=1))
    c = await call(anyq.add("c", None, priority=1))
    d = await call(anyq.add("d", None, priority=2**21 - 1))
    scores = dict(redis_client.zrange(k(queue_name, "prioritized"), 0, -1, withscores=True))
    assert scores == {
        a.id.encode(): 3 * PRIORITY_SHIFT + 1,
        b.id.encode(): 1 * PRIORITY_SHIFT + 2,
        c.id.encode(): 1 * PRIORITY_SHIFT + 3,
        d.id.encode(): (2**21 - 1) * PRIORITY_SHIFT + 4,
    }
    assert redis_client.llen(k(queue_name, "wait")) == 0
    assert await call(anyq.get_job_state(a.id)) == "prioritized"
    ordered = await call(anyq.get_jobs("prioritized", asc=True))
    assert [j.id for j in ordered] == [b.id, c.id, a.id, d.id]
    assert [j.priority for j in ordered] == [1, 1, 3, 2**21 - 1]


async def test_priority_jobs_are_processed_lowest_number_first_fifo_within(
        sq: Queue, redis_client: redis.Redis, queue_name: str, redis_url: str) -> None:
    ids = {}
    for name, priority in [("p3", 3), ("p1a", 1), ("p2", 2), ("p1b", 1), ("none", 0),
                           ("p1c", 1)]:
        ids[name] = sq.add(name, None, priority=priority).id
    proc = await process_all(queue_name, redis_url, redis_client, 6, concurrency=1)
    by_id = {v: name for name, v in ids.items()}
    assert [by_id[i] for i in proc.started] == ["none", "p1a", "p1b", "p1c", "p2", "p3"]
    # pc is deleted once prioritized is empty.
    assert redis_client.exists(k(queue_name, "pc")) == 0


async def test_delay_goes_to_delayed_with_bullmq_score(anyq: Q, redis_client: redis.Redis,
                                                       queue_name: str) -> None:
    job = await call(anyq.add("later", {"x": 1}, delay=60))
    ts = int(job.timestamp.timestamp() * 1000)
    score = redis_client.zscore(k(queue_name, "delayed"), job.id)
    assert score is not None
    assert int(score) // 4096 == ts + 60_000
    assert int(score) % 4096 == 0
    assert await call(anyq.get_job_state(job.id)) == "delayed"
    assert job.delay == 60
    assert job_hash(redis_client, queue_name, job.id)["delay"] == "60000"
    assert redis_client.llen(k(queue_name, "wait")) == 0
    # The marker points at the due time for idle workers.
    assert redis_client.zscore(k(queue_name, "marker"), "1") == ts + 60_000
    assert stream_events(redis_client, queue_name)[-1] == (
        "delayed", {"jobId": job.id, "delay": str(ts + 60_000)})


async def test_delayed_jobs_in_the_same_millisecond_get_increasing_seq(
        anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    jobs = await call(anyq.add_bulk([{"name": f"d{i}", "data": None, "opts": {"delay": 10}}
                                     for i in range(3)]))
    scores = [int(redis_client.zscore(k(queue_name, "delayed"), j.id)) for j in jobs]
    # add_bulk stamps one timestamp: same due ms, seq 0, 1, 2.
    assert len({s // 4096 for s in scores}) == 1
    assert [s % 4096 for s in scores] == [0, 1, 2]


async def test_delay_accepts_timedelta(anyq: Q, redis_client: redis.Redis,
                                       queue_name: str) -> None:
    job = await call(anyq.add("later", None, delay=timedelta(milliseconds=2500)))
    assert job_hash(redis_client, queue_name, job.id)["delay"] == "2500"


async def test_lifo_job_is_taken_first(sq: Queue, redis_client: redis.Redis, queue_name: str,
                                       redis_url: str) -> None:
    a = sq.add("a", None)
    b = sq.add("b", None)
    c = sq.add("c", None, lifo=True)
    assert json.loads(job_hash(redis_client, queue_name, c.id)["opts"])["lifo"] is True
    # Workers take from the right of wait: LIFO jobs are RPUSHed.
    assert redis_client.lrange(k(queue_name, "wait"), 0, -1) == [
        b.id.encode(), a.id.encode(), c.id.encode()]
    proc = await process_all(queue_name, redis_url, redis_client, 3, concurrency=1)
    assert proc.started == [c.id, a.id, b.id]


async def test_default_job_options_are_merged(redis_url: str, queue_name: str,
                                              redis_client: redis.Redis) -> None:
    defaults = {"attempts": 8, "backoff": {"type": "exponential", "delay": 5},
                "remove_on_complete": True}
    with Queue(queue_name, connection=redis_url, default_job_options=defaults) as q:
        plain = q.add("a", None)
        override = q.add("b", None, attempts=2, backoff=1)
    async with AsyncQueue(queue_name, connection=redis_url,
                          default_job_options=defaults) as aq:
        from_async = await aq.add("c", None, priority=4)
    assert json.loads(job_hash(redis_client, queue_name, plain.id)["opts"]) == {
        "attempts": 8, "backoff": {"type": "exponential", "delay": 5000},
        "removeOnComplete": True}
    assert json.loads(job_hash(redis_client, queue_name, override.id)["opts"]) == {
        "attempts": 2, "backoff": {"type": "fixed", "delay": 1000},
        "removeOnComplete": True}
    assert json.loads(job_hash(redis_client, queue_name, from_async.id)["opts"]) == {
        "attempts": 8, "backoff": {"type": "exponential", "delay": 5000},
        "removeOnComplete": True, "priority": 4}
    assert defaults == {"attempts": 8, "backoff": {"type": "exponential", "delay": 5},
                        "remove_on_complete": True}  # not mutated


async def test_add_bulk_returns_jobs_in_order(anyq: Q, redis_client: redis.Redis,
                                              queue_name: str) -> None:
    specs: list[dict[str, Any]] = [
        {"name": "a", "data": {"i": 0}},
        {"name": "b", "data": {"i": 1}, "opts": {"priority": 2}},
        {"name": "c", "data": {"i": 2}, "opts": {"delay": 30}},
        {"name": "d", "data": {"i": 3}, "opts": {"job_id": "custom-d"}},
        {"name": "e", "data": {"i": 4}, "opts": {}},
    ]
    jobs = await call(anyq.add_bulk(specs))
    assert [j.id for j in jobs] == ["1", "2", "3", "custom-d", "5"]
    assert [j.name for j in jobs] == ["a", "b", "c", "d", "e"]
    assert [j.data for j in jobs] == [{"i": i} for i in range(5)]
    for job in jobs:
        assert job_hash(redis_client, queue_name, job.id)["name"] == job.name
    counts = await call(anyq.get_job_counts("waiting", "prioritized", "delayed"))
    assert counts == {"waiting": 3, "prioritized": 1, "delayed": 1}
    assert await call(anyq.add_bulk([])) == []


async def test_add_bulk_calls_the_add_script_once_per_job(
        sq: Queue, redis_client: redis.Redis, queue_name: str) -> None:
    sq.add("warm-up", None)  # clock synced, scripts loaded

    def calls(command: str) -> int:
        stats = redis_client.info("commandstats")
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    script_calls = ("fcall", "evalsha", "eval")
    before = {c: calls(c) for c in (*script_calls, "hgetall")}
    jobs = sq.add_bulk([{"name": "x", "data": i} for i in range(50)])
    after = {c: calls(c) for c in (*script_calls, "hgetall")}
    assert len(jobs) == 50
    assert [j.data for j in jobs] == list(range(50))
    # At most one script call per job, no read-back of the new jobs.
    assert 1 <= sum(after[c] - before[c] for c in script_calls) <= 50
    assert after["hgetall"] == before["hgetall"]
    assert sq.get_job_counts("waiting") == {"waiting": 51}


async def test_deduplication_returns_first_job_and_writes_event(
        anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    first = await call(anyq.add("a", {"v": 1}, deduplication={"id": "dd"}))
    second = await call(anyq.add("b", {"v": 2}, deduplication={"id": "dd"}))
    assert second.id == first.id
    assert second.data == {"v": 1}
    assert second.name == "a"
    assert await call(anyq.get_job_counts("waiting")) == {"waiting": 1}
    assert redis_client.get(k(queue_name, "de:dd")) == first.id.encode()
    assert job_hash(redis_client, queue_name, first.id)["deid"] == "dd"
    name, fields = stream_events(redis_client, queue_name)[-1]
    assert name == "deduplicated"
    assert fields["jobId"] == first.id
    assert fields["deduplicationId"] == "dd"
    assert json.loads(job_hash(redis_client, queue_name, first.id)["opts"])["de"] == {"id": "dd"}


async def test_deduplication_without_ttl_ends_when_job_completes(
        sq: Queue, redis_client: redis.Redis, queue_name: str, redis_url: str) -> None:
    first = sq.add("a", {"v": 1}, deduplication={"id": "once"})
    assert sq.add("a", {"v": 2}, deduplication={"id": "once"}).id == first.id
    await process_all(queue_name, redis_url, redis_client, 1)
    assert sq.get_job_state(first.id) == "completed"
    again = sq.add("a", {"v": 3}, deduplication={"id": "once"})
    assert again.id != first.id
    assert again.data == {"v": 3}
    assert sq.get_job_state(again.id) == "waiting"


async def test_deduplication_with_ttl_refuses_until_ttl_passes(
        anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    first = await call(anyq.add("a", {"v": 1}, deduplication={"id": "t", "ttl": 0.4}))
    pttl = redis_client.pttl(k(queue_name, "de:t"))
    assert 0 < pttl <= 400
    assert json.loads(job_hash(redis_client, queue_name, first.id)["opts"])["de"] == {
        "id": "t", "ttl": 400}
    dup = await call(anyq.add("a", {"v": 2}, deduplication={"id": "t", "ttl": 0.4}))
    assert dup.id == first.id

    async def accepted() -> Job | None:
        job = await call(anyq.add("a", {"v": 3}, deduplication={"id": "t", "ttl": 0.4}))
        return job if job.id != first.id else None

    later = await await_until(accepted, timeout=3, what="dedup ttl to expire")
    assert later.data == {"v": 3}
    assert await call(anyq.get_job_counts("waiting")) == {"waiting": 2}


async def test_removing_the_owner_releases_the_deduplication_id(
        anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    first = await call(anyq.add("a", None, deduplication={"id": "r"}))
    assert await call(anyq.remove(first.id)) is True
    again = await call(anyq.add("a", None, deduplication={"id": "r"}))
    assert again.id != first.id


# --- reading --------------------------------------------------------------------


async def test_get_job_returns_the_job_or_none(anyq: Q) -> None:
    added = await call(anyq.add("n", {"k": "v"}, priority=5))
    job = await call(anyq.get_job(added.id))
    assert job is not None
    assert (job.id, job.name, job.data, job.priority) == (added.id, "n", {"k": "v"}, 5)
    assert job.timestamp == added.timestamp
    assert await call(anyq.get_job("999")) is None
    assert await call(anyq.get_job("nope")) is None


async def test_get_job_state_for_every_state(anyq: Q, redis_client: redis.Redis,
                                             queue_name: str, redis_url: str) -> None:
    ok = await call(anyq.add("ok", None))
    bad = await call(anyq.add("bad", None))
    await process_all(queue_name, redis_url, redis_client, 2, Holder(fail={"bad"}))
    held = await call(anyq.add("hold", None))
    proc = Holder(hold={"hold"})
    async with worker(queue_name, redis_url, proc, concurrency=1):
        await await_until(lambda: held.id in proc.started, what="job active")
        # The only slot is busy: these stay where they are.
        waiting = await call(anyq.add("w", None))
        prioritized = await call(anyq.add("p", None, priority=1))
        delayed = await call(anyq.add("d", None, delay=60))
        expected = {
            ok.id: "completed", bad.id: "failed", held.id: "active", waiting.id: "waiting",
            prioritized.id: "prioritized", delayed.id: "delayed", "missing": "unknown",
        }
        for job_id, state in expected.items():
            assert await call(anyq.get_job_state(job_id)) == state, job_id
        assert await call(anyq.get_job_state(waiting.id)) == JobState.WAITING
        # A JobState, typed as one, and still a str: in sets, dicts and JSON as before.
        state = await call(anyq.get_job_state(delayed.id))
        assert state is JobState.DELAYED and isinstance(state, str)
        assert state in {"delayed"} and json.dumps(state) == '"delayed"' and f"{state}" == "delayed"
        assert await call(delayed.get_state()) is JobState.DELAYED
        await call(anyq.remove(waiting.id))
        await call(anyq.remove(prioritized.id))
        proc.release.set()


async def test_get_job_state_waiting_and_prioritized(anyq: Q) -> None:
    w = await call(anyq.add("w", None))
    p = await call(anyq.add("p", None, priority=9))
    assert await call(anyq.get_job_state(w.id)) == "waiting"
    assert await call(anyq.get_job_state(p.id)) == "prioritized"


async def test_get_job_counts_all_and_selected(anyq: Q, redis_client: redis.Redis,
                                               queue_name: str, redis_url: str) -> None:
    await call(anyq.add("ok", None))
    await call(anyq.add("bad", None))
    await process_all(queue_name, redis_url, redis_client, 2, Holder(fail={"bad"}))
    for _ in range(3):
        await call(anyq.add("w", None))
    await call(anyq.add("p", None, priority=2))
    await call(anyq.add("d", None, delay=60))
    await call(anyq.add("d", None, delay=60))
    counts = await call(anyq.get_job_counts())
    expected = {"waiting": 3, "prioritized": 1, "delayed": 2, "active": 0, "completed": 1,
                "failed": 1}
    assert {s: counts[s] for s in expected} == expected
    assert set(expected) <= set(counts)
    assert counts.get("waiting-children", 0) == 0
    assert await call(anyq.get_job_counts("delayed", "completed")) == {
        "delayed": 2, "completed": 1}
    assert await call(anyq.get_job_counts("waiting")) == {"waiting": 3}


async def test_get_jobs_order_and_ranges(anyq: Q) -> None:
    ids = [(await call(anyq.add("w", {"i": i}))).id for i in range(5)]
    newest_first = await call(anyq.get_jobs("waiting"))
    assert [j.id for j in newest_first] == ids[::-1]
    oldest_first = await call(anyq.get_jobs(["waiting"], asc=True))
    assert [j.id for j in oldest_first] == ids
    assert [j.id for j in await call(anyq.get_jobs("waiting", 1, 2))] == [ids[3], ids[2]]
    assert [j.id for j in await call(anyq.get_jobs("waiting", 1, 2, asc=True))] == [
        ids[1], ids[2]]
    assert [j.id for j in await call(anyq.get_jobs("waiting", 0, 0))] == [ids[4]]
    assert [j.data for j in oldest_first] == [{"i": i} for i in range(5)]


async def test_get_jobs_zset_states_and_several_states(anyq: Q) -> None:
    d1 = await call(anyq.add("d", None, delay=30))
    d2 = await call(anyq.add("d", None, delay=10))
    d3 = await call(anyq.add("d", None, delay=20))
    w = await call(anyq.add("w", None))
    # delayed sorted by due time
    assert [j.id for j in await call(anyq.get_jobs("delayed", asc=True))] == [
        d2.id, d3.id, d1.id]
    assert [j.id for j in await call(anyq.get_jobs("delayed"))] == [d1.id, d3.id, d2.id]
    both = await call(anyq.get_jobs(["waiting", "delayed"], asc=True))
    assert sorted(j.id for j in both) == sorted([w.id, d1.id, d2.id, d3.id])
    assert await call(anyq.get_jobs("completed")) == []
    # "wait" is BullMQ's alias for waiting
    assert [j.id for j in await call(anyq.get_jobs("wait"))] == [w.id]


# --- pause / resume ---------------------------------------------------------------


async def test_pause_and_resume_flag_marker_and_events(anyq: Q, redis_client: redis.Redis,
                                                       queue_name: str) -> None:
    await call(anyq.add("a", None))
    assert await call(anyq.is_paused()) is False
    assert redis_client.exists(k(queue_name, "marker")) == 1
    await call(anyq.pause())
    assert await call(anyq.is_paused()) is True
    assert redis_client.hget(k(queue_name, "meta"), "paused") == b"1"
    assert redis_client.exists(k(queue_name, "marker")) == 0
    assert event_names(redis_client, queue_name)[-1] == "paused"
    # Jobs added while paused stay in wait (v6 has no paused list), no marker.
    job = await call(anyq.add("b", None))
    assert await call(anyq.get_job_state(job.id)) == "waiting"
    assert redis_client.exists(k(queue_name, "paused")) == 0
    assert redis_client.exists(k(queue_name, "marker")) == 0

    await call(anyq.resume())
    assert await call(anyq.is_paused()) is False
    assert redis_client.hexists(k(queue_name, "meta"), "paused") == 0
    assert redis_client.zscore(k(queue_name, "marker"), "0") == 0
    assert event_names(redis_client, queue_name)[-1] == "resumed"


async def test_worker_takes_nothing_while_paused(anyq: Q, redis_client: redis.Redis,
                                                 queue_name: str, redis_url: str) -> None:
    await call(anyq.pause())
    job = await call(anyq.add("a", None))
    proc = Holder()
    async with worker(queue_name, redis_url, proc) as w:
        # The worker has asked for jobs at least once and got none.
        await await_until(lambda: w.last_fetch_at is not None, what="a fetch")
        assert proc.started == []
        assert await call(anyq.get_job_state(job.id)) == "waiting"
        await call(anyq.resume())
        await await_until(lambda: proc.done == [job.id], what="job processed after resume")
    assert await call(anyq.get_job_state(job.id)) == "completed"


# --- drain / clean / obliterate -----------------------------------------------------


async def test_drain_removes_waiting_and_prioritized_not_delayed(
        anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    w = await call(anyq.add("w", None))
    p = await call(anyq.add("p", None, priority=1))
    d = await call(anyq.add("d", None, delay=60))
    await call(anyq.drain())
    assert await call(anyq.get_job_counts("waiting", "prioritized", "delayed")) == {
        "waiting": 0, "prioritized": 0, "delayed": 1}
    assert await call(anyq.get_job(w.id)) is None
    assert await call(anyq.get_job(p.id)) is None
    assert await call(anyq.get_job_state(d.id)) == "delayed"
    assert redis_client.exists(k(queue_name, "pc")) == 0


async def test_drain_with_delayed(anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    await call(anyq.add("w", None))
    d = await call(anyq.add("d", None, delay=60))
    await call(anyq.drain(delayed=True))
    assert await call(anyq.get_job_counts("waiting", "delayed")) == {"waiting": 0, "delayed": 0}
    assert await call(anyq.get_job(d.id)) is None
    assert redis_client.exists(k(queue_name, "marker")) == 0


async def test_drain_leaves_finished_jobs(anyq: Q, redis_client: redis.Redis, queue_name: str,
                                          redis_url: str) -> None:
    done = await call(anyq.add("done", None))
    await process_all(queue_name, redis_url, redis_client, 1)
    await call(anyq.add("w", None))
    await call(anyq.drain(delayed=True))
    assert await call(anyq.get_job_state(done.id)) == "completed"


def _age_finished(r: redis.Redis, queue_name: str, state: str, job_ids: list[str],
                  hours: float = 1) -> None:
    """Make finished jobs look as if they finished ``hours`` ago."""
    old = now_ms(r) - int(hours * 3_600_000)
    for job_id in job_ids:
        r.zadd(k(queue_name, state), {job_id: old}, xx=True)
        r.hset(k(queue_name, job_id), "finishedOn", old)


def _age_timestamps(r: redis.Redis, queue_name: str, job_ids: list[str],
                    hours: float = 1) -> None:
    old = now_ms(r) - int(hours * 3_600_000)
    for job_id in job_ids:
        r.hset(k(queue_name, job_id), "timestamp", old)


async def test_clean_completed(anyq: Q, redis_client: redis.Redis, queue_name: str,
                               redis_url: str) -> None:
    jobs = [await call(anyq.add("c", None)) for _ in range(3)]
    await process_all(queue_name, redis_url, redis_client, 3)
    old = [jobs[0].id, jobs[1].id]
    _age_finished(redis_client, queue_name, "completed", old)
    removed = await call(anyq.clean(60))
    assert sorted(removed) == sorted(old)
    for job_id in old:
        assert await call(anyq.get_job(job_id)) is None
    assert redis_client.exists(k(queue_name, old[0])) == 0
    assert await call(anyq.get_job_state(jobs[2].id)) == "completed"
    name, fields = stream_events(redis_client, queue_name)[-1]
    assert (name, fields) == ("cleaned", {"count": "2"})
    # Nothing older than the grace is left.
    assert await call(anyq.clean(timedelta(minutes=1))) == []


async def test_clean_limit(anyq: Q, redis_client: redis.Redis, queue_name: str,
                           redis_url: str) -> None:
    jobs = [await call(anyq.add("c", None)) for _ in range(4)]
    await process_all(queue_name, redis_url, redis_client, 4)
    _age_finished(redis_client, queue_name, "completed", [j.id for j in jobs])
    first = await call(anyq.clean(60, limit=3))
    assert len(first) == 3
    rest = await call(anyq.clean(60, limit=3))
    assert len(rest) == 1
    assert sorted(first + rest) == sorted(j.id for j in jobs)
    assert await call(anyq.get_job_counts("completed")) == {"completed": 0}


async def test_clean_waiting_takes_the_oldest_first_and_keeps_the_rest_in_order(
        anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    jobs = [await call(anyq.add("c", None)) for _ in range(6)]
    assert await call(anyq.clean(0, limit=2, state="wait")) == [jobs[0].id, jobs[1].id]
    assert [x.decode() for x in redis_client.lrange(f"bull:{queue_name}:wait", 0, -1)] \
        == [j.id for j in reversed(jobs[2:])]
    assert await call(anyq.clean(0, state="wait")) == [j.id for j in jobs[2:]]
    assert redis_client.llen(f"bull:{queue_name}:wait") == 0

async def test_clean_failed(anyq: Q, redis_client: redis.Redis, queue_name: str,
                            redis_url: str) -> None:
    ok = await call(anyq.add("ok", None))
    bad = await call(anyq.add("bad", None))
    await process_all(queue_name, redis_url, redis_client, 2, Holder(fail={"bad"}))
    _age_finished(redis_client, queue_name, "failed", [bad.id])
    _age_finished(redis_client, queue_name, "completed", [ok.id])
    assert await call(anyq.clean(60, state="failed")) == [bad.id]
    assert await call(anyq.get_job(bad.id)) is None
    assert await call(anyq.get_job_state(ok.id)) == "completed"


async def test_clean_waiting_and_delayed(anyq: Q, redis_client: redis.Redis,
                                         queue_name: str) -> None:
    w_old = await call(anyq.add("w", None))
    w_new = await call(anyq.add("w", None))
    d_old = await call(anyq.add("d", None, delay=60))
    d_new = await call(anyq.add("d", None, delay=60))
    _age_timestamps(redis_client, queue_name, [w_old.id, d_old.id])
    assert await call(anyq.clean(60, state="waiting")) == [w_old.id]
    assert await call(anyq.clean(60, state="delayed")) == [d_old.id]
    assert await call(anyq.get_job(w_old.id)) is None
    assert await call(anyq.get_job(d_old.id)) is None
    assert await call(anyq.get_job_state(w_new.id)) == "waiting"
    assert await call(anyq.get_job_state(d_new.id)) == "delayed"
    assert await call(anyq.get_job_counts("waiting", "delayed")) == {"waiting": 1, "delayed": 1}


async def test_obliterate_removes_every_key(anyq: Q, redis_client: redis.Redis,
                                            queue_name: str, redis_url: str) -> None:
    await call(anyq.add("ok", None))
    await call(anyq.add("bad", None))
    await process_all(queue_name, redis_url, redis_client, 2, Holder(fail={"bad"}))
    j = await call(anyq.add("w", None))
    await call(j.log("a line"))
    await call(anyq.add("p", None, priority=3))
    await call(anyq.add("d", None, delay=60))
    await call(anyq.add("x", None, deduplication={"id": "dd"}))
    await call(anyq.add_bulk([{"name": "bulk", "data": i} for i in range(1200)]))
    await call(anyq.set_global_concurrency(4))
    await call(anyq.pause())
    assert redis_client.keys(f"bull:{queue_name}:*") != []
    await call(anyq.obliterate())
    assert redis_client.keys(f"bull:{queue_name}:*") == []
    # The queue is usable again afterwards.
    fresh = await call(anyq.add("again", None))
    assert fresh.id == "1"
    assert await call(anyq.is_paused()) is False


async def test_obliterate_refuses_while_active_unless_forced(
        anyq: Q, redis_client: redis.Redis, queue_name: str, redis_url: str) -> None:
    held = await call(anyq.add("hold", None))
    other = await call(anyq.add("other", None, delay=60))
    proc = Holder(hold={"hold"})
    async with worker(queue_name, redis_url, proc):
        await await_until(lambda: held.id in proc.started, what="job active")
        # (The worker's stalled check and heartbeat may add their own keys at
        # any time; a live worker re-registers itself even after obliterate.)
        def job_keys() -> list[str]:
            return [key for key in queue_keys(redis_client, queue_name)
                    if not key.endswith((":stalled", ":stalled-check", ":pq:workers",
                                         ":pq:workerinfo"))]

        keys_before = job_keys()
        with pytest.raises(QueueBusyError):
            await call(anyq.obliterate())
        assert job_keys() == keys_before
        assert await call(anyq.get_job_state(other.id)) == "delayed"
        assert await call(anyq.get_job_state(held.id)) == "active"
        assert await call(anyq.is_paused()) is False

        await call(anyq.obliterate(force=True))
        assert job_keys() == []
        proc.release.set()


async def test_remove(anyq: Q, redis_client: redis.Redis, queue_name: str,
                      redis_url: str) -> None:
    w = await call(anyq.add("w", None))
    d = await call(anyq.add("d", None, delay=60))
    p = await call(anyq.add("p", None, priority=2))
    await call(w.log("line"))
    for job in (w, d, p):
        assert await call(anyq.remove(job.id)) is True
        assert await call(anyq.get_job(job.id)) is None
        assert await call(anyq.get_job_state(job.id)) == "unknown"
    assert redis_client.exists(k(queue_name, f"{w.id}:logs")) == 0
    assert await call(anyq.remove(w.id)) is False
    assert await call(anyq.remove("missing")) is False
    removed = [f for n, f in stream_events(redis_client, queue_name) if n == "removed"]
    assert removed == [{"jobId": w.id, "prev": "waiting"}, {"jobId": d.id, "prev": "delayed"},
                       {"jobId": p.id, "prev": "prioritized"}]


async def test_remove_does_not_remove_a_locked_active_job(
        anyq: Q, redis_client: redis.Redis, queue_name: str, redis_url: str) -> None:
    held = await call(anyq.add("hold", None))
    proc = Holder(hold={"hold"})
    async with worker(queue_name, redis_url, proc):
        await await_until(lambda: held.id in proc.started, what="job active")
        assert await call(anyq.remove(held.id)) is False
        assert await call(anyq.get_job_state(held.id)) == "active"
        assert await call(anyq.get_job(held.id)) is not None
        proc.release.set()
        await await_until(lambda: held.id in proc.done)
    await await_until(lambda: anyq.get_job_state(held.id), what="state")
    assert await call(anyq.get_job_state(held.id)) == "completed"
    assert await call(anyq.remove(held.id)) is True


async def test_remove_completed_job(anyq: Q, redis_client: redis.Redis, queue_name: str,
                                    redis_url: str) -> None:
    job = await call(anyq.add("c", None))
    await process_all(queue_name, redis_url, redis_client, 1)
    assert await call(anyq.remove(job.id)) is True
    assert await call(anyq.get_job_counts("completed")) == {"completed": 0}


async def test_retry_jobs_moves_failed_back_to_waiting(
        anyq: Q, redis_client: redis.Redis, queue_name: str, redis_url: str) -> None:
    jobs = [await call(anyq.add("bad", {"i": i})) for i in range(3)]
    await process_all(queue_name, redis_url, redis_client, 3, Holder(fail={"bad"}))
    assert await call(anyq.get_job_counts("failed")) == {"failed": 3}
    assert await call(anyq.retry_jobs(count=2)) == 2
    assert await call(anyq.get_job_counts("failed", "waiting")) == {"failed": 1, "waiting": 2}
    assert await call(anyq.retry_jobs()) == 1
    assert await call(anyq.get_job_counts("failed", "waiting")) == {"failed": 0, "waiting": 3}
    for job in jobs:
        got = await call(anyq.get_job(job.id))
        assert got.failed_reason is None
        assert got.finished_on is None
        assert await call(anyq.get_job_state(job.id)) == "waiting"
    assert await call(anyq.retry_jobs()) == 0
    # They run again.
    proc = await process_all(queue_name, redis_url, redis_client, 3)
    assert sorted(proc.done) == sorted(j.id for j in jobs)


async def test_retry_jobs_completed(anyq: Q, redis_client: redis.Redis, queue_name: str,
                                    redis_url: str) -> None:
    job = await call(anyq.add("ok", None))
    await process_all(queue_name, redis_url, redis_client, 1)
    assert await call(anyq.retry_jobs(state="completed")) == 1
    assert await call(anyq.get_job_state(job.id)) == "waiting"
    assert (await call(anyq.get_job(job.id))).return_value is None


async def test_promote_jobs(anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    d = [await call(anyq.add("d", None, delay=60 + i)) for i in range(3)]
    p = await call(anyq.add("dp", None, delay=60, priority=2))
    assert await call(anyq.promote_jobs()) == 4
    assert await call(anyq.get_job_counts("delayed", "waiting", "prioritized")) == {
        "delayed": 0, "waiting": 3, "prioritized": 1}
    assert await call(anyq.get_job_state(p.id)) == "prioritized"
    for job in d:
        assert job_hash(redis_client, queue_name, job.id)["delay"] == "0"
    assert redis_client.zscore(k(queue_name, "marker"), "0") == 0
    assert await call(anyq.promote_jobs()) == 0


async def test_set_global_concurrency_and_rate_limit_meta(
        anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    meta = k(queue_name, "meta")
    await call(anyq.set_global_concurrency(3))
    assert redis_client.hget(meta, "concurrency") == b"3"
    await call(anyq.set_global_rate_limit(10, 2))
    assert redis_client.hget(meta, "max") == b"10"
    assert redis_client.hget(meta, "duration") == b"2000"
    await call(anyq.set_global_rate_limit(5, timedelta(milliseconds=1500)))
    assert (redis_client.hget(meta, "max"), redis_client.hget(meta, "duration")) == (
        b"5", b"1500")
    await call(anyq.set_global_concurrency(None))
    assert redis_client.hexists(meta, "concurrency") == 0
    await call(anyq.set_global_rate_limit(None))
    assert redis_client.hexists(meta, "max") == 0
    assert redis_client.hexists(meta, "duration") == 0


async def test_global_concurrency_limits_active_jobs(
        sq: Queue, redis_client: redis.Redis, queue_name: str, redis_url: str) -> None:
    sq.set_global_concurrency(1)
    jobs = [sq.add("hold", None) for _ in range(3)]
    proc = Holder(hold={"hold"})
    async with worker(queue_name, redis_url, proc, concurrency=3) as w:
        await await_until(lambda: proc.started, what="a job active")
        await await_until(lambda: w.last_fetch_at is not None)
        assert sq.get_job_counts("active", "waiting") == {"active": 1, "waiting": 2}
        proc.release.set()
        await await_until(lambda: len(proc.done) == 3, what="all done")
    assert sorted(proc.done) == sorted(j.id for j in jobs)


async def test_adds_and_finishes_survive_a_script_flush(
        anyq: Q, redis_client: redis.Redis, queue_name: str, redis_url: str) -> None:
    """After SCRIPT FLUSH (or a Redis restart) the scripts are loaded again
    without the caller noticing: each add writes its job exactly once, and a
    worker's batched finishes (sent the moment a chunk fills) complete."""
    first = await call(anyq.add("before", {"n": 0}))
    redis_client.script_flush()
    second = await call(anyq.add("after", {"n": 1}))
    assert redis_client.llen(k(queue_name, "wait")) == 2
    assert redis_client.get(k(queue_name, "id")) == b"2", "an add ran twice"
    assert (first.id, second.id) == ("1", "2")
    async with worker(queue_name, redis_url, Holder(), concurrency=4):
        await await_until(lambda: redis_client.zcard(k(queue_name, "completed")) == 2,
                          what="the first two jobs completed")
        redis_client.script_flush()
        more = [await call(anyq.add("more", {"n": i})) for i in range(8)]
        await await_until(lambda: redis_client.zcard(k(queue_name, "completed")) == 10,
                          what="every job completed after the flush")
    assert redis_client.zcard(k(queue_name, "failed")) == 0
    assert {j.id for j in more} == {str(i) for i in range(3, 11)}


async def test_queue_context_managers_and_names(redis_url: str, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        assert q.name == queue_name
        assert q.prefix == "bull"
    async with AsyncQueue(queue_name, connection=redis_url) as aq:
        assert aq.name == queue_name
        assert isinstance(await aq.add("x", None), Job)


async def test_custom_prefix(redis_url: str, queue_name: str, redis_client: redis.Redis) -> None:
    with Queue(queue_name, connection=redis_url, prefix="{pq}") as q:
        job = q.add("x", {"a": 1})
        assert redis_client.hget(f"{{pq}}:{queue_name}:{job.id}", "name") == b"x"
        q.obliterate()
    assert redis_client.keys(f"{{pq}}:{queue_name}:*") == []
    assert redis_client.keys(f"bull:{queue_name}:*") == []


async def test_finished_on_and_processed_on_are_utc(
        anyq: Q, redis_client: redis.Redis, queue_name: str, redis_url: str) -> None:
    job = await call(anyq.add("x", None))
    await process_all(queue_name, redis_url, redis_client, 1)
    got = await call(anyq.get_job(job.id))
    for moment in (got.timestamp, got.processed_on, got.finished_on):
        assert isinstance(moment, datetime)
        assert moment.utcoffset() == timedelta(0)
        assert abs(moment - datetime.now(timezone.utc)) < timedelta(minutes=5)
    # timestamp comes from the producer's estimate of the server clock and
    # processedOn from the worker's: allow for the estimates' error.
    assert got.timestamp - timedelta(seconds=1) <= got.processed_on <= got.finished_on
    assert got.return_value == {"ok": job.id}
    assert got.attempts_made == 1
