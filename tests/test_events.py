"""QueueEvents: the queue's global events stream, read from another connection."""

from __future__ import annotations

import asyncio
from typing import Any

import _helpers_queue
import redis
from _helpers_queue import (
    Holder,
    await_until,
    worker,
)

from pyqueue import Event, Queue, QueueEvents

# Shared fixtures (defined in _helpers_queue).
sq = _helpers_queue.sq


async def collect(events: QueueEvents, until: Any, timeout: float = 5.0) -> list[Event]:
    """Iterate ``events`` until ``until(collected)`` is true."""
    got: list[Event] = []

    async def run() -> None:
        async for event in events:
            got.append(event)
            if until(got):
                return

    await asyncio.wait_for(run(), timeout)
    return got


def names(events: list[Event]) -> list[str]:
    return [e.name for e in events]


def find(events: list[Event], name: str, job_id: str | None = None) -> Event:
    for event in events:
        if event.name == name and (job_id is None or event.job_id == job_id):
            return event
    raise AssertionError(f"no {name} event for {job_id} in {names(events)}")


async def test_async_for_yields_the_lifecycle_events(sq: Queue, redis_url: str,
                                                     queue_name: str) -> None:
    async with QueueEvents(queue_name, connection=redis_url, block_ms=100) as events:
        reading = asyncio.ensure_future(collect(
            events, lambda got: "resumed" in names(got), timeout=8))
        # Wait until the reader has pinned its start ("$" resolved).
        await await_until(lambda: events.last_event_id != "$", what="reader started")

        async def proc(job: Any) -> Any:
            if job.name == "bad":
                raise RuntimeError("nope")
            await job.update_progress(50)
            return {"sent": True}

        ok = sq.add("ok", {"a": 1})
        bad = sq.add("bad", None)
        async with worker(queue_name, redis_url, proc):
            await await_until(lambda: sq.get_job_counts("completed", "failed")
                              == {"completed": 1, "failed": 1}, what="both finished")
        sq.add("ok", None, job_id="fixed")
        sq.add("ok", None, job_id="fixed")
        gone = sq.add("gone", None)
        sq.remove(gone.id)
        sq.pause()
        sq.resume()
        got = await reading

    assert find(got, "added", ok.id).data == {"name": "ok"}
    assert find(got, "waiting", ok.id).job_id == ok.id
    assert find(got, "active", ok.id).data.get("prev") == "waiting"
    assert find(got, "progress", ok.id).data == {"data": 50}
    completed = find(got, "completed", ok.id)
    assert completed.data["returnvalue"] == {"sent": True}
    assert find(got, "failed", bad.id).data["failedReason"] == "nope"
    assert find(got, "duplicated", "fixed").job_id == "fixed"
    assert find(got, "removed", gone.id).data == {"prev": "waiting"}
    paused = find(got, "paused")
    assert paused.job_id is None
    assert find(got, "resumed").job_id is None
    # Events come in stream order, each with its stream id.
    ids = [e.id for e in got]
    assert all(ids)
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    assert names(got).index("added") < names(got).index("completed")
    assert isinstance(got[0], Event)


async def test_default_start_skips_earlier_events(sq: Queue, redis_url: str,
                                                  queue_name: str) -> None:
    sq.add("before", None)
    async with QueueEvents(queue_name, connection=redis_url, block_ms=100) as events:
        reading = asyncio.ensure_future(collect(events, lambda got: len(got) >= 2))
        await await_until(lambda: events.last_event_id != "$", what="reader started")
        after = sq.add("after", None)
        got = await reading
    assert [(e.name, e.job_id) for e in got] == [("added", after.id), ("waiting", after.id)]


async def test_last_event_id_zero_reads_history(sq: Queue, redis_url: str,
                                                queue_name: str) -> None:
    jobs = [sq.add("h", None) for _ in range(3)]
    sq.add("d", None, delay=60)
    async with QueueEvents(queue_name, connection=redis_url, last_event_id="0",
                           block_ms=100) as events:
        got = await collect(events, lambda got: len(got) >= 8)
    assert [(e.name, e.job_id) for e in got[:6]] == [
        (name, job.id) for job in jobs for name in ("added", "waiting")]
    assert got[6].name == "added"
    assert got[7].name == "delayed"
    assert int(got[7].data["delay"]) > 0


async def test_resume_from_the_last_handled_event(sq: Queue, redis_url: str,
                                                  queue_name: str) -> None:
    jobs = [sq.add("r", None) for _ in range(4)]  # 8 events
    async with QueueEvents(queue_name, connection=redis_url, last_event_id="0",
                           block_ms=100) as events:
        first = await collect(events, lambda got: len(got) >= 3)
    last_handled = first[-1].id
    assert [(e.name, e.job_id) for e in first] == [
        ("added", "1"), ("waiting", "1"), ("added", "2")]

    more = sq.add("r", None)
    async with QueueEvents(queue_name, connection=redis_url, last_event_id=last_handled,
                           block_ms=100) as events:
        rest = await collect(events, lambda got: len(got) >= 7)
    assert [(e.name, e.job_id) for e in rest] == [
        ("waiting", jobs[1].id), ("added", jobs[2].id), ("waiting", jobs[2].id),
        ("added", jobs[3].id), ("waiting", jobs[3].id), ("added", more.id),
        ("waiting", more.id)]
    assert not {e.id for e in rest} & {e.id for e in first}


async def test_last_event_id_attribute_is_the_last_yielded_event(
        sq: Queue, redis_url: str, queue_name: str) -> None:
    for _ in range(4):
        sq.add("r", None)  # 8 events
    async with QueueEvents(queue_name, connection=redis_url, last_event_id="0",
                           block_ms=100) as events:
        first = await collect(events, lambda got: len(got) >= 3)
        assert events.last_event_id == first[-1].id


async def test_on_callbacks_with_start_and_close(sq: Queue, redis_url: str,
                                                 queue_name: str) -> None:
    completed: list[Event] = []
    everything: list[Event] = []
    async_seen: list[Event] = []

    async def async_callback(event: Event) -> None:
        async_seen.append(event)

    events = QueueEvents(queue_name, connection=redis_url, block_ms=100)
    events.on("completed", completed.append).on("*", everything.append)
    events.on("added", async_callback)
    await events.start()
    try:
        await await_until(lambda: events.last_event_id != "$", what="reader started")
        job = sq.add("cb", {"x": 1})
        async with worker(queue_name, redis_url, Holder(result=lambda j: 7)):
            await await_until(lambda: completed, what="completed callback")
        await await_until(lambda: async_seen, what="async callback")
    finally:
        await events.close()
    assert [(e.name, e.job_id, e.data["returnvalue"]) for e in completed] == [
        ("completed", job.id, 7)]
    assert {"added", "waiting", "active", "completed"} <= set(names(everything))
    assert [(e.name, e.job_id) for e in async_seen] == [("added", job.id)]


async def test_a_raising_callback_does_not_stop_the_others(sq: Queue, redis_url: str,
                                                           queue_name: str,
                                                           caplog: Any) -> None:
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise ValueError("listener bug")

    events = QueueEvents(queue_name, connection=redis_url, block_ms=100)
    events.on("added", broken).on("added", lambda e: seen.append(e.job_id))
    await events.start()
    try:
        await await_until(lambda: events.last_event_id != "$", what="reader started")
        first = sq.add("a", None)
        second = sq.add("b", None)
        await await_until(lambda: len(seen) == 2, what="both events")
    finally:
        await events.close()
    assert seen == [first.id, second.id]


async def test_delayed_and_drained_and_deduplicated_events(sq: Queue, redis_url: str,
                                                           queue_name: str) -> None:
    async with QueueEvents(queue_name, connection=redis_url, block_ms=100) as events:
        reading = asyncio.ensure_future(collect(events, lambda got: "drained" in names(got)))
        await await_until(lambda: events.last_event_id != "$", what="reader started")
        d = sq.add("d", None, delay=60)
        first = sq.add("x", None, deduplication={"id": "k"})
        sq.add("x", None, deduplication={"id": "k"})
        async with worker(queue_name, redis_url, Holder()):
            got = await reading
    delayed = find(got, "delayed", d.id)
    assert int(delayed.data["delay"]) > 0
    dedup = find(got, "deduplicated", first.id)
    assert dedup.data["deduplicationId"] == "k"
    assert find(got, "drained").job_id is None


async def test_events_stream_is_capped(sq: Queue, redis_client: redis.Redis,
                                       queue_name: str) -> None:
    redis_client.hset(f"bull:{queue_name}:meta", "opts.maxLenEvents", 100)
    sq.add_bulk([{"name": "cap", "data": i} for i in range(1000)])
    length = redis_client.xlen(f"bull:{queue_name}:events")
    assert length < 300  # MAXLEN ~ 100: approximate trimming
    assert length >= 100
    assert sq.get_job_counts("waiting") == {"waiting": 1000}


async def test_default_cap_keeps_events_without_trimming_small_streams(
        sq: Queue, redis_client: redis.Redis, queue_name: str) -> None:
    sq.add_bulk([{"name": "n", "data": i} for i in range(200)])
    assert redis_client.xlen(f"bull:{queue_name}:events") == 400
