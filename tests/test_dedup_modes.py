"""Deduplication modes of ``add(..., deduplication={...})`` against a real Redis,
as BullMQ 6.7.0 behaves:

- simple ``{id}``: duplicates are ignored while the job lives; the key goes
  when the job completes or fails, and the next add creates a new job;
- throttle ``{id, ttl}``: duplicates are ignored until the ttl runs out, also
  after the job finished;
- ``extend``: each duplicate restarts the ttl;
- ``replace`` (debounce): a duplicate replaces a job that is still delayed;
- ``reschedule``: a duplicate moves a still-delayed job to its new delay,
  keeping the job's id and data;
- ``keep_last_if_active``: duplicates added while the job runs collapse into
  one job (the last one's data) that runs after it.

Nothing sleeps to synchronise: tests wait for conditions with deadlines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from _worker_helpers import wait_for

from pyqueue import AsyncQueue, InvalidJobOptionsError, Job, Queue, QueueEvents, Worker


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> AsyncIterator[AsyncQueue]:
    q = AsyncQueue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        await q.close()


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def events(r: redis.Redis, queue_name: str, *names: str) -> list[dict[str, str]]:
    out = []
    for _, fields in r.xrange(f"bull:{queue_name}:events"):
        entry = {text(k): text(v) for k, v in fields.items()}
        if not names or entry["event"] in names:
            out.append(entry)
    return out


def de_key(queue_name: str, dedup_id: str) -> str:
    return f"bull:{queue_name}:de:{dedup_id}"


def make_worker(queue_name: str, processor: Any, redis_url: str, **options: Any) -> Worker:
    options.setdefault("shutdown_grace", 2)
    return Worker(queue_name, processor, connection=redis_url, **options)


async def state_is(queue: AsyncQueue, job_id: str, state: str) -> bool:
    return await queue.get_job_state(job_id) == state


async def total_jobs(queue: AsyncQueue) -> int:
    return sum((await queue.get_job_counts()).values())


# --------------------------------------------------------------------------- simple


async def test_simple_mode_ignores_duplicates_while_the_job_lives(
        queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    a = await queue.add("mail", {"v": 1}, deduplication={"id": "m1"})
    b = await queue.add("mail", {"v": 2}, deduplication={"id": "m1"})
    assert b.id == a.id
    assert b.data == {"v": 1}
    stored = await queue.get_job(a.id)
    assert stored is not None and stored.data == {"v": 1}
    assert await total_jobs(queue) == 1
    assert await queue.get_deduplication_job_id("m1") == a.id
    assert redis_client.pttl(de_key(queue_name, "m1")) == -1  # no ttl
    (event,) = events(redis_client, queue_name, "deduplicated")
    assert event["jobId"] == a.id
    assert event["deduplicationId"] == "m1"
    assert event["deduplicatedJobId"] not in (a.id, "")  # the id the duplicate would have had
    assert await queue.get_job(event["deduplicatedJobId"]) is None


@pytest.mark.parametrize("outcome", ["completed", "failed"])
async def test_simple_mode_key_is_released_when_the_job_finishes(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis,
        outcome: str) -> None:
    async def process(job: Job) -> Any:
        if outcome == "failed":
            raise RuntimeError("nope")
        return "ok"

    a = await queue.add("x", {"v": 1}, deduplication={"id": "k"})
    w = make_worker(queue_name, process, redis_url)
    try:
        await wait_for(lambda: state_is(queue, a.id, outcome), 10, f"job {outcome}")
    finally:
        await w.close()
    assert redis_client.exists(de_key(queue_name, "k")) == 0
    assert await queue.get_deduplication_job_id("k") is None
    b = await queue.add("x", {"v": 2}, deduplication={"id": "k"})
    assert b.id != a.id
    assert b.data == {"v": 2}
    assert await queue.get_deduplication_job_id("k") == b.id


async def test_removing_the_job_releases_its_key(queue: AsyncQueue) -> None:
    a = await queue.add("x", {"v": 1}, deduplication={"id": "r"})
    assert await queue.remove(a.id) is True
    assert await queue.get_deduplication_job_id("r") is None
    b = await queue.add("x", {"v": 2}, deduplication={"id": "r"})
    assert b.id != a.id


# --------------------------------------------------------------------------- throttle


async def test_throttle_ignores_duplicates_until_the_ttl_even_after_completion(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    a = await queue.add("t", {"v": 1}, deduplication={"id": "th", "ttl": 1.0})
    pttl = redis_client.pttl(de_key(queue_name, "th"))
    assert 800 < pttl <= 1000
    w = make_worker(queue_name, lambda job: "done", redis_url)
    try:
        await wait_for(lambda: state_is(queue, a.id, "completed"), 10, "completed")
    finally:
        await w.close()
    # the key is not removed on completion: duplicates are still ignored
    assert await queue.get_deduplication_job_id("th") == a.id
    b = await queue.add("t", {"v": 2}, deduplication={"id": "th", "ttl": 1.0})
    assert b.id == a.id
    # a duplicate does not restart the ttl
    assert redis_client.pttl(de_key(queue_name, "th")) <= pttl
    await wait_for(lambda: redis_client.exists(de_key(queue_name, "th")) == 0, 5,
                   "the ttl to run out")
    c = await queue.add("t", {"v": 3}, deduplication={"id": "th", "ttl": 1.0})
    assert c.id != a.id
    assert c.data == {"v": 3}


async def test_throttle_key_survives_a_failed_job(
        redis_url: str, queue_name: str, queue: AsyncQueue) -> None:
    def boom(job: Job) -> None:
        raise RuntimeError("boom")

    a = await queue.add("t", {}, deduplication={"id": "tf", "ttl": 30})
    w = make_worker(queue_name, boom, redis_url)
    try:
        await wait_for(lambda: state_is(queue, a.id, "failed"), 10, "failed")
    finally:
        await w.close()
    assert await queue.get_deduplication_job_id("tf") == a.id
    assert (await queue.add("t", {}, deduplication={"id": "tf", "ttl": 30})).id == a.id


# --------------------------------------------------------------------------- extend


async def test_extend_restarts_the_ttl_on_each_duplicate(
        queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    opts = {"id": "ex", "ttl": 0.6, "extend": True}
    a = await queue.add("e", {"v": 1}, deduplication=opts)
    key = de_key(queue_name, "ex")
    for v in (2, 3, 4):
        await wait_for(lambda: 0 <= redis_client.pttl(key) < 350, 5, "ttl to run down")
        dup = await queue.add("e", {"v": v}, deduplication=opts)
        assert dup.id == a.id
        assert redis_client.pttl(key) > 450  # restarted
    # the key has lived well past its first ttl, and still points at the first job
    assert await queue.get_deduplication_job_id("ex") == a.id
    assert len(events(redis_client, queue_name, "deduplicated")) == 3
    stored = await queue.get_job(a.id)
    assert stored is not None and stored.data == {"v": 1}
    await wait_for(lambda: redis_client.exists(key) == 0, 5, "the ttl to run out")
    b = await queue.add("e", {"v": 5}, deduplication=opts)
    assert b.id != a.id


async def test_plain_ttl_is_not_extended_by_duplicates(
        queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    opts = {"id": "noext", "ttl": 0.6}
    a = await queue.add("e", {}, deduplication=opts)
    key = de_key(queue_name, "noext")
    await wait_for(lambda: 0 <= redis_client.pttl(key) < 350, 5, "ttl to run down")
    assert (await queue.add("e", {}, deduplication=opts)).id == a.id
    assert redis_client.pttl(key) < 350


# --------------------------------------------------------------------------- replace


async def test_replace_debounces_a_still_delayed_job(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    opts = {"id": "deb", "ttl": 10, "replace": True}
    async with QueueEvents(queue_name, connection=redis_url, last_event_id="0",
                           block_ms=200) as qe:
        a = await queue.add("d", {"v": 1}, deduplication=opts, delay=5)
        pttl_before = redis_client.pttl(de_key(queue_name, "deb"))
        b = await queue.add("d", {"v": 2}, deduplication=opts, delay=5)
        assert b.id != a.id
        assert b.data == {"v": 2}
        assert await queue.get_job(a.id) is None
        assert await queue.get_job_state(b.id) == "delayed"
        assert await queue.get_deduplication_job_id("deb") == b.id
        # the ttl is kept, not restarted
        assert redis_client.pttl(de_key(queue_name, "deb")) <= pttl_before
        assert await total_jobs(queue) == 1

        seen: list[Any] = []
        async for event in qe:
            seen.append(event)
            if event.name == "delayed" and event.job_id == b.id:
                break
    names = [(e.name, e.job_id) for e in seen]
    assert names == [("added", a.id), ("delayed", a.id), ("removed", a.id),
                     ("deduplicated", b.id), ("added", b.id), ("delayed", b.id)]
    removed = seen[2]
    assert removed.data["prev"] == "delayed"
    dedup = seen[3]
    assert dedup.data == {"deduplicationId": "deb", "deduplicatedJobId": a.id}


async def test_replace_ignores_duplicates_once_the_job_is_no_longer_delayed(
        queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    opts = {"id": "deb2", "ttl": 10, "replace": True}
    a = await queue.add("d", {"v": 1}, deduplication=opts, delay=5)
    await (await queue.get_job(a.id)).promote()  # type: ignore[union-attr]
    assert await queue.get_job_state(a.id) == "waiting"
    b = await queue.add("d", {"v": 2}, deduplication=opts, delay=5)
    assert b.id == a.id
    stored = await queue.get_job(a.id)
    assert stored is not None and stored.data == {"v": 1}
    assert await total_jobs(queue) == 1
    (event,) = events(redis_client, queue_name, "deduplicated")
    assert event["jobId"] == a.id  # normal orientation: the kept job
    assert events(redis_client, queue_name, "removed") == []


async def test_replace_runs_only_the_last_data_after_the_debounce_delay(
        redis_url: str, queue_name: str, queue: AsyncQueue) -> None:
    opts = {"id": "deb3", "ttl": 5, "replace": True}
    for v in range(1, 6):
        await queue.add("d", {"v": v}, deduplication=opts, delay=0.4)
    ran: list[Any] = []
    w = make_worker(queue_name, lambda job: ran.append(job.data), redis_url)
    try:
        await wait_for(lambda: ran, 10, "the debounced job")

        async def completed() -> bool:
            return (await queue.get_job_counts())["completed"] == 1
        await wait_for(completed, 10, "the debounced job to complete")
    finally:
        await w.close()
    assert ran == [{"v": 5}]
    counts = await queue.get_job_counts()
    assert counts["completed"] == 1 and await total_jobs(queue) == 1


# --------------------------------------------------------------------------- reschedule


async def test_reschedule_moves_the_delayed_job_keeping_id_and_data(
        queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    opts = {"id": "rs", "ttl": 30, "reschedule": True}
    a = await queue.add("r", {"v": 1}, deduplication=opts, delay=5)
    score_before = redis_client.zscore(f"bull:{queue_name}:delayed", a.id)
    b = await queue.add("r", {"v": 2}, deduplication=opts, delay=20)
    assert b.id == a.id
    stored = await queue.get_job(a.id)
    assert stored is not None
    assert stored.data == {"v": 1}
    assert stored.delay == 20
    assert await queue.get_job_state(a.id) == "delayed"
    score_after = redis_client.zscore(f"bull:{queue_name}:delayed", a.id)
    assert score_before is not None and score_after is not None
    moved_ms = (score_after - score_before) / 4096
    assert 14_000 < moved_ms < 16_000  # due ~15 s later than before
    assert await total_jobs(queue) == 1
    dedup = events(redis_client, queue_name, "deduplicated")
    assert [(e["jobId"], e["deduplicationId"]) for e in dedup] == [(a.id, "rs")]
    delayed = events(redis_client, queue_name, "delayed")
    assert [e["jobId"] for e in delayed] == [a.id, a.id]
    assert int(delayed[1]["delay"]) - int(delayed[0]["delay"]) == pytest.approx(15_000, abs=1000)


async def test_reschedule_can_bring_a_job_forward(
        redis_url: str, queue_name: str, queue: AsyncQueue) -> None:
    opts = {"id": "rs2", "ttl": 30, "reschedule": True}
    a = await queue.add("r", {"v": 1}, deduplication=opts, delay=60)
    await queue.add("r", {"v": 2}, deduplication=opts, delay=0.2)
    ran: list[tuple[str, Any]] = []
    w = make_worker(queue_name, lambda job: ran.append((job.id, job.data)), redis_url)
    try:
        await wait_for(lambda: ran, 10, "the rescheduled job to run")
    finally:
        await w.close()
    assert ran == [(a.id, {"v": 1})]


async def test_reschedule_ignores_duplicates_of_a_job_that_is_not_delayed(
        queue: AsyncQueue) -> None:
    opts = {"id": "rs3", "ttl": 30, "reschedule": True}
    a = await queue.add("r", {"v": 1}, deduplication=opts)
    b = await queue.add("r", {"v": 2}, deduplication=opts, delay=10)
    assert b.id == a.id
    assert await queue.get_job_state(a.id) == "waiting"
    stored = await queue.get_job(a.id)
    assert stored is not None and stored.delay == 0


# --------------------------------------------------------------------------- keep last


async def test_keep_last_if_active_runs_the_last_duplicate_after_the_active_job(
        redis_url: str, queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    opts = {"id": "kl", "keep_last_if_active": True}
    release = asyncio.Event()
    ran: list[tuple[str, Any]] = []

    async def process(job: Job) -> Any:
        ran.append((job.id, job.data))
        if len(ran) == 1:
            await release.wait()
        return "ok"

    a = await queue.add("k", {"v": 1}, deduplication=opts)
    w = make_worker(queue_name, process, redis_url)
    try:
        await wait_for(lambda: ran, 10, "first job active")
        dups = [await queue.add("k", {"v": v}, deduplication=opts) for v in (2, 3, 4)]
        assert [d.id for d in dups] == [a.id] * 3
        assert await total_jobs(queue) == 1  # nothing new while it runs
        release.set()
        await wait_for(lambda: len(ran) >= 2, 10, "the kept duplicate to run")

        async def all_done() -> bool:
            counts = await queue.get_job_counts()
            return counts["completed"] == 2
        await wait_for(all_done, 10, "both completed")
        # nothing else follows
        await asyncio.sleep(0.2)
    finally:
        await w.close()
    assert len(ran) == 2
    assert ran[0] == (a.id, {"v": 1})
    assert ran[1][0] != a.id and ran[1][1] == {"v": 4}
    assert await total_jobs(queue) == 2
    assert await queue.get_deduplication_job_id("kl") is None
    assert redis_client.exists(f"bull:{queue_name}:dn:kl") == 0
    dedup = events(redis_client, queue_name, "deduplicated")
    assert [e["jobId"] for e in dedup] == [a.id] * 3


async def test_keep_last_if_active_ignores_duplicates_of_a_job_not_yet_active(
        redis_url: str, queue_name: str, queue: AsyncQueue) -> None:
    opts = {"id": "kl2", "keep_last_if_active": True}
    a = await queue.add("k", {"v": 1}, deduplication=opts)
    assert (await queue.add("k", {"v": 2}, deduplication=opts)).id == a.id
    ran: list[Any] = []
    w = make_worker(queue_name, lambda job: ran.append(job.data), redis_url)
    try:
        await wait_for(lambda: state_is(queue, a.id, "completed"), 10, "completed")
        await asyncio.sleep(0.2)  # nothing else may run
    finally:
        await w.close()
    assert ran == [{"v": 1}]
    assert await total_jobs(queue) == 1


# --------------------------------------------------------------------------- key access


async def test_get_and_remove_deduplication_key(queue_name: str, queue: AsyncQueue) -> None:
    assert await queue.get_deduplication_job_id("nope") is None
    assert await queue.remove_deduplication_key("nope") is False
    a = await queue.add("x", {"v": 1}, deduplication={"id": "g", "ttl": 60})
    assert await queue.get_deduplication_job_id("g") == a.id
    assert await queue.remove_deduplication_key("g") is True
    assert await queue.get_deduplication_job_id("g") is None
    assert await queue.remove_deduplication_key("g") is False
    b = await queue.add("x", {"v": 2}, deduplication={"id": "g", "ttl": 60})
    assert b.id != a.id
    assert await total_jobs(queue) == 2  # the first job is untouched


def test_sync_queue_deduplication_key_access(redis_url: str, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        a = q.add("x", {}, deduplication={"id": "s"})
        assert q.add("x", {}, deduplication={"id": "s"}).id == a.id
        assert q.get_deduplication_job_id("s") == a.id
        assert q.remove_deduplication_key("s") is True
        assert q.get_deduplication_job_id("s") is None
        assert q.add("x", {}, deduplication={"id": "s"}).id != a.id


async def test_stored_options_use_bullmq_encoding(
        queue_name: str, queue: AsyncQueue, redis_client: redis.Redis) -> None:
    cases = {
        "p": ({"id": "p"}, {"id": "p"}),
        "t": ({"id": "t", "ttl": 2}, {"id": "t", "ttl": 2000}),
        "e": ({"id": "e", "ttl": 2, "extend": True}, {"id": "e", "ttl": 2000, "extend": True}),
        "r": ({"id": "r", "ttl": 2, "replace": True}, {"id": "r", "ttl": 2000, "replace": True}),
        "s": ({"id": "s", "ttl": 2, "reschedule": True},
              {"id": "s", "ttl": 2000, "reschedule": True}),
        "k": ({"id": "k", "keep_last_if_active": True}, {"id": "k", "keepLastIfActive": True}),
    }
    for dedup_id, (given, stored) in cases.items():
        job = await queue.add("x", {}, deduplication=given)
        assert job.opts["de"] == stored
        fields = {text(k): text(v)
                  for k, v in redis_client.hgetall(f"bull:{queue_name}:{job.id}").items()}
        assert fields["deid"] == dedup_id
    # keep_last_if_active keeps its key without a ttl
    assert redis_client.pttl(de_key(queue_name, "k")) == -1


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("dedup", "words"), [
    ({"id": "a", "ttl": 1, "extend": True, "replace": True}, "one of"),
    ({"id": "a", "ttl": 1, "replace": True, "reschedule": True}, "one of"),
    ({"id": "a", "keep_last_if_active": True, "extend": True, "ttl": 1}, "one of"),
    ({"id": "a", "extend": True}, "ttl"),
    ({"id": "a", "ttl": 1, "extend": 1}, "extend"),
    ({"id": "a", "ttl": 1, "replace": "yes"}, "replace"),
    ({"id": "a", "reschedule": None, "ttl": 1}, "reschedule"),
    ({"id": "a", "keep_last_if_active": 0}, "keep_last_if_active"),
    ({"id": "a", "ttl": 0}, "ttl"),
    ({"id": "a", "ttl": -1}, "ttl"),
    ({"id": "a", "ttl": "1s"}, "ttl"),
    ({"id": ""}, "deduplication"),
    ({"id": 5}, "deduplication"),
    ({"ttl": 1}, "deduplication"),
    ({"id": "a", "keepLastIfActive": True}, "keepLastIfActive"),
    ({"id": "a", "debounce": True}, "debounce"),
    ("a", "deduplication"),
])
async def test_invalid_deduplication_options_raise_before_any_write(
        queue_name: str, queue: AsyncQueue, redis_client: redis.Redis,
        dedup: Any, words: str) -> None:
    with pytest.raises(InvalidJobOptionsError) as info:
        await queue.add("x", {}, deduplication=dedup)
    assert words in str(info.value)
    assert redis_client.keys(f"bull:{queue_name}:*") == []
