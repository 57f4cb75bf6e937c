"""QueueEvents reports the events a reader lost to the stream's cap (``gap``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import _helpers_queue
import redis
from _helpers_queue import await_until

from pyqueue import Event, Queue, QueueEvents

sq = _helpers_queue.sq

CAP = 10  # MAXLEN ~ 10: Redis trims whole nodes (100 entries), so ~10..110 remain


def cap_stream(client: redis.Redis, queue_name: str) -> None:
    client.hset(f"bull:{queue_name}:meta", "opts.maxLenEvents", CAP)


def stream_ids(client: redis.Redis, queue_name: str) -> list[str]:
    return [i.decode() for i, _ in client.xrange(f"bull:{queue_name}:events")]


def trimmed(client: redis.Redis, queue_name: str) -> int:
    """How many entries the stream lost to trimming so far."""
    key = f"bull:{queue_name}:events"
    return int(client.xinfo_stream(key)["entries-added"]) - int(client.xlen(key))


async def take(events: QueueEvents, n: int, timeout: float = 5.0) -> list[Event]:
    """The next ``n`` events of an iteration."""
    got: list[Event] = []

    async def run() -> None:
        async for event in events:
            got.append(event)
            if len(got) >= n:
                return

    await asyncio.wait_for(run(), timeout)
    return got


async def test_resuming_from_a_trimmed_id_reports_the_gap(
        sq: Queue, redis_url: str, queue_name: str, redis_client: redis.Redis,
        caplog: Any) -> None:
    cap_stream(redis_client, queue_name)
    first = sq.add("a", None)
    resume_id = stream_ids(redis_client, queue_name)[0]  # the "added" of job 1
    sq.add_bulk([{"name": "b", "data": i} for i in range(1000)])
    retained = stream_ids(redis_client, queue_name)
    assert len(retained) < 300  # trimmed far past the resume id
    caplog.set_level(logging.WARNING, logger="pyqueue.events")
    async with QueueEvents(queue_name, connection=redis_url, last_event_id=resume_id,
                           block_ms=100) as events:
        got = await take(events, 1 + len(retained))
        assert events.last_event_id == retained[-1]
    gap = got[0]
    assert gap.name == "gap"
    assert gap.job_id is None
    assert gap.data == {"missed_after": resume_id, "resumed_at": retained[0],
                        "approx_missed": None}
    assert gap.id == resume_id
    assert [e.id for e in got[1:]] == retained
    assert first.id  # (job 1's "waiting" is among the missed)
    assert any("fell behind" in r.getMessage() and resume_id in r.getMessage()
               for r in caplog.records)


async def test_a_live_reader_that_falls_behind_gets_the_missed_count(
        sq: Queue, redis_url: str, queue_name: str, redis_client: redis.Redis) -> None:
    cap_stream(redis_client, queue_name)
    gaps: list[Event] = []
    async with QueueEvents(queue_name, connection=redis_url, block_ms=100) as events:
        sq.add("a", None)
        head = await take(events, 2)  # added, waiting: 2 entries so far
        assert [e.name for e in head] == ["added", "waiting"]
        sq.add_bulk([{"name": "b", "data": i} for i in range(1000)])  # 2000 more
        retained = stream_ids(redis_client, queue_name)
        rest = await take(events, 1 + len(retained))
        gaps = [e for e in rest if e.name == "gap"]
        # Caught up again: later events come with no new gap.
        sq.add("c", None)
        tail = await take(events, 2)
    assert len(gaps) == 1 and rest[0] is gaps[0]
    assert gaps[0].data["missed_after"] == head[-1].id
    assert gaps[0].data["resumed_at"] == retained[0]
    assert gaps[0].data["approx_missed"] == 2000 - len(retained)
    assert [e.id for e in rest[1:]] == retained
    assert [e.name for e in tail] == ["added", "waiting"]


async def test_no_gap_when_the_stream_was_trimmed_only_behind_the_reader(
        sq: Queue, redis_url: str, queue_name: str, redis_client: redis.Redis) -> None:
    """Trimming of entries the reader already handled, and a reader started at
    "0" (everything retained), report nothing."""
    cap_stream(redis_client, queue_name)
    sq.add_bulk([{"name": "old", "data": i} for i in range(300)])  # trimmed history
    seen: list[Event] = []
    async with QueueEvents(queue_name, connection=redis_url, last_event_id="0",
                           block_ms=100) as events:
        retained = stream_ids(redis_client, queue_name)
        seen += await take(events, len(retained))
        trimmed_before = trimmed(redis_client, queue_name)
        # Keep up with bursts smaller than the cap (6 events), trimming behind us.
        for round_ in range(50):
            sq.add_bulk([{"name": f"r{round_}", "data": i} for i in range(3)])
            seen += await take(events, 6)
        assert trimmed(redis_client, queue_name) > trimmed_before  # it did trim meanwhile
    assert "gap" not in {e.name for e in seen}
    assert len({e.id for e in seen}) == len(seen) == len(retained) + 300


async def test_gap_event_reaches_on_gap_callbacks(
        sq: Queue, redis_url: str, queue_name: str, redis_client: redis.Redis) -> None:
    cap_stream(redis_client, queue_name)
    sq.add("a", None)
    resume_id = stream_ids(redis_client, queue_name)[-1]
    sq.add_bulk([{"name": "b", "data": i} for i in range(1000)])
    gaps: list[Event] = []
    events = QueueEvents(queue_name, connection=redis_url, last_event_id=resume_id,
                         block_ms=100)
    events.on("gap", gaps.append)
    await events.start()
    try:
        await await_until(lambda: gaps, what="the gap callback")
    finally:
        await events.close()
    assert gaps[0].data["missed_after"] == resume_id
