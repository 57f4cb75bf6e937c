"""Finishing jobs from either end of ``active``: the fetch count at the start
of the lock token (``pq:fseq`` before the fetch) bounds how many jobs were
fetched after the job,
and the finish searches ``active`` from the nearer end (includes/fence.lua).

Whichever end is chosen, every finish must take exactly its own job out of
``active``; these tests finish jobs in orders that use both ends, and with
tokens that carry no count (BullMQ's, or anything else a client wrote).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import _helpers_queue
import pytest
import redis
from _helpers_queue import run_script

from pyqueue import Queue
from pyqueue._keys import QueueKeys

sq = _helpers_queue.sq


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as c:
        yield c


def take(client: redis.Redis, keys: QueueKeys, n: int) -> list[tuple[str, str]]:
    """Fetch ``n`` jobs in one call; their ids and lock tokens, oldest first."""
    reply = run_script(client, keys, "moveToActive", token="w:1", lockMs=30_000, n=n)
    assert isinstance(reply, list)
    return [(str(job[0]), str(job[1])) for job in reply[2:]]


def loaded(sq: Queue, client: redis.Redis, queue_name: str, n: int,
           fetch: int | None = None) -> tuple[QueueKeys, list[tuple[str, str]]]:
    """Add ``n`` jobs and fetch ``fetch`` of them (all by default) in one call."""
    keys = QueueKeys("bull", queue_name)
    sq.add_bulk([{"name": "j", "data": {"i": i}} for i in range(n)])
    return keys, take(client, keys, n if fetch is None else fetch)


def finish(client: redis.Redis, keys: QueueKeys, job_id: str, token: str) -> int:
    reply = run_script(client, keys, "moveToFinished", id=job_id, lockToken=token,
                   target="completed", value="null", keepCount=-1, keepAgeMs=0)
    assert isinstance(reply, list)
    return int(reply[0][0])


def test_tokens_start_with_the_fetch_count(sq: Queue, client: redis.Redis,
                                         queue_name: str) -> None:
    keys = QueueKeys("bull", queue_name)
    for i in range(5):
        sq.add("j", {"i": i})
    first = take(client, keys, 2)
    second = take(client, keys, 3)
    assert [token.split(":", 1)[0] for _, token in first + second] == ["0", "0", "2", "2", "2"]
    assert len({token for _, token in first + second}) == 5
    assert client.get(keys.fetch_seq) == "5"
    for job_id, token in first + second:
        assert client.get(keys.lock(job_id)) == token


@pytest.mark.parametrize("order", ["newest-first", "oldest-first", "shuffled"])
def test_every_finish_takes_its_own_job_out_of_active(sq: Queue, client: redis.Redis,
                                                      queue_name: str, order: str) -> None:
    keys = QueueKeys("bull", queue_name)
    # Over 256 active jobs: below that every finish searches from the tail.
    sq.add_bulk([{"name": "j", "data": {"i": i}} for i in range(300)])
    jobs = take(client, keys, 300)
    if order == "newest-first":
        jobs.reverse()
    elif order == "shuffled":
        random.Random(7).shuffle(jobs)
    for k, (job_id, token) in enumerate(jobs):
        assert finish(client, keys, job_id, token) == 0
        left = client.lrange(keys.active, 0, -1)
        assert job_id not in left and len(left) == 300 - k - 1
    assert client.zcard(keys.completed) == 300


def test_tokens_without_a_count_and_a_reset_count_still_finish(
    sq: Queue, client: redis.Redis, queue_name: str
) -> None:
    keys, jobs = loaded(sq, client, queue_name, 300)
    # Another client's token (no count at its end) on the newest job.
    newest = jobs[-1][0]
    client.set(keys.lock(newest), "bullmq-token-abc", px=30_000)
    assert finish(client, keys, newest, "bullmq-token-abc") == 0
    # The count deleted (or far behind) while jobs are active: any end will do.
    client.delete(keys.fetch_seq)
    for job_id, token in reversed(jobs[:-1]):
        assert finish(client, keys, job_id, token) == 0
    assert client.llen(keys.active) == 0
    assert client.zcard(keys.completed) == 300


def test_obliterate_removes_the_fetch_count(sq: Queue, client: redis.Redis,
                                            queue_name: str) -> None:
    keys = QueueKeys("bull", queue_name)
    sq.add("j", {})
    take(client, keys, 1)
    assert client.exists(keys.fetch_seq)
    sq.obliterate(force=True)
    assert not client.exists(keys.fetch_seq)


# --- batch finishes: one walk locates the batch, the found jobs leave together ----

def finish_batch(client: redis.Redis, keys: QueueKeys,
                 items: list[tuple[str, str]]) -> list[int]:
    """Finish ``items`` (id, token) in one moveToFinished call; their codes."""
    reply = run_script(client, keys, "moveToFinished", items=[
        {"id": job_id, "lockToken": token, "target": "completed", "value": "null",
         "keepCount": -1, "keepAgeMs": 0} for job_id, token in items])
    assert isinstance(reply, list)
    return [int(code) for code in reply[0]]


def batches(jobs: list[tuple[str, str]], how: str) -> list[list[tuple[str, str]]]:
    """Split the fetched ``jobs`` (oldest first) into finish batches of 4-40."""
    rng = random.Random(11)
    if how == "tail-runs":  # oldest first, in runs: the usual worker
        return [jobs[i:i + 25] for i in range(0, len(jobs), 25)]
    if how == "head-runs":  # newest first: every run is near the head
        newest = list(reversed(jobs))
        return [newest[i:i + 25] for i in range(0, len(newest), 25)]
    shuffled = list(jobs)
    rng.shuffle(shuffled)  # each batch spread over both halves of the list
    out, i = [], 0
    while i < len(shuffled):
        size = rng.randint(4, 40)
        out.append(shuffled[i:i + size])
        i += size
    return out


@pytest.mark.parametrize("how", ["tail-runs", "head-runs", "scattered"])
def test_a_batch_finish_takes_exactly_its_jobs_out_in_order(
    sq: Queue, client: redis.Redis, queue_name: str, how: str
) -> None:
    keys, jobs = loaded(sq, client, queue_name, 600, 300)
    jobs += take(client, keys, 300)
    expected = client.lrange(keys.active, 0, -1)
    for batch in batches(jobs, how):
        assert finish_batch(client, keys, batch) == [0] * len(batch)
        gone = {job_id for job_id, _ in batch}
        expected = [job_id for job_id in expected if job_id not in gone]
        assert client.lrange(keys.active, 0, -1) == expected
    assert client.zcard(keys.completed) == 600


def test_a_batch_leaves_jobs_it_does_not_own_and_reports_each(
    sq: Queue, client: redis.Redis, queue_name: str
) -> None:
    keys, jobs = loaded(sq, client, queue_name, 400)
    (a, ta), (b, _), (c, tc), (d, td), (e, te) = jobs[:5]
    client.lrem(keys.active, 1, c)  # locked, but not in active any more
    before = client.lrange(keys.active, 0, -1)
    codes = finish_batch(client, keys, [(a, ta), (b, "someone-else"), (c, tc), (d, td),
                                        (a, ta), (e, te)])
    # b: another token (-6, kept); c: not active (-3); a twice: the lock is gone (-2)
    assert codes == [0, -6, -3, 0, -2, 0]
    assert client.lrange(keys.active, 0, -1) == [x for x in before if x not in (a, d, e)]
    assert client.get(keys.lock(c)) == tc  # nothing written for c


def test_an_item_that_raises_still_takes_the_finished_jobs_out_of_active(
    sq: Queue, client: redis.Redis, queue_name: str
) -> None:
    keys, jobs = loaded(sq, client, queue_name, 300)
    client.set(keys.completed, "not a sorted set")  # the ZADD of a finish raises
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        finish_batch(client, keys, jobs[:10])
    left = client.lrange(keys.active, 0, -1)
    # The first job had left `active` before its ZADD raised (as with one
    # finish); the other nine were not reached and are still active.
    assert jobs[0][0] not in left
    assert all(job_id in left for job_id, _ in jobs[1:]) and len(left) == 299
