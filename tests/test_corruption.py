"""A damaged job fails alone (issue 18, item 2).

One job's hash damaged from outside (a counter that is not a number, a field
that is not JSON, a deleted hash, a key of another type, a lock key of
another type) must never make a script stop half-way and leave other jobs in
no state: the damaged job goes to ``failed`` with a reason naming the damage
(or stays where it is), and every other job still completes.

The property test builds jobs in every state, damages one thing of one job
at random (hypothesis, bounded examples), runs the operations and a real
worker, and checks the outcome of every job. The tests after it pin each
script's handling with a fixed example, including the issue's own: a due
delayed job whose priority is 'abc' among other due jobs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from _helpers_queue import run_script
from _worker_helpers import wait_for, wait_for_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyqueue import AsyncQueue, JobStateError, Queue, Worker
from pyqueue import _scripts as S
from pyqueue._keys import QueueKeys

PENDING = ("active", "waiting", "waiting2", "prioritized", "delayed", "delayed2", "grouped")
FINISHED = {"completed": "completed", "failed": "failed"}
FIELDS = ("priority", "delay", "timestamp", "atm", "ats", "stc", "opts", "data", "name", "gid")
GARBAGE = st.one_of(st.sampled_from(["abc", "nan", "inf", "-inf", "1e999", "1.5", "", "{", "[]",
                                     "5", "null", "0x", " 7", "99999999999999999999999"]),
                    st.text(max_size=12))
DAMAGE = st.one_of(
    st.tuples(st.just("field"), st.sampled_from(FIELDS), GARBAGE),
    st.tuples(st.just("drop"), st.sampled_from(FIELDS), st.just("")),
    st.tuples(st.just("delete"), st.just(""), st.just("")),
    st.tuples(st.just("type"), st.sampled_from(["string", "list", "set"]), st.just("")),
    st.tuples(st.just("lock"), st.sampled_from(["list", "string"]), st.just("")),
)
# The reasons a damaged job may fail with: the scripts' and the worker's.
REASONS = ("job hash corrupt", "job hash missing", "corrupt job")


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield c
    finally:
        c.close()


def script(client: redis.Redis, keys: QueueKeys, name: str, **params: Any) -> Any:
    """Run a pyqueue script directly (as a worker would), at the server's time."""
    return run_script(client, keys, name, **params)


def take(client: redis.Redis, keys: QueueKeys, token: str, lock_ms: int = 30_000) -> str:
    reply = script(client, keys, "moveToActive", token=token, lockMs=lock_ms, n=1)
    return str(reply[2][0])


def held(client: redis.Redis, keys: QueueKeys, job_id: str) -> str:
    """The lock token a take() gave ``job_id`` (the fetch count ends it)."""
    return str(client.get(keys.lock(job_id)))


def finish(client: redis.Redis, keys: QueueKeys, job_id: str, token: str,
           target: str = "completed") -> int:
    reply = script(client, keys, "moveToFinished", id=job_id, lockToken=token, target=target,
                   value='"v"', stacktrace="[]", keepCount=-1, keepAgeMs=0)
    return int(reply[0][0])


def build(queue: Queue, client: redis.Redis, keys: QueueKeys) -> dict[str, str]:
    """One job in each state; the active one belongs to a worker that died
    (its lock is short, the stalled check must bring it back)."""
    jobs: dict[str, str] = {}
    for kind in ("completed", "failed"):
        job = queue.add("j", {"kind": kind})
        token = "t-" + kind
        assert take(client, keys, token) == job.id
        assert finish(client, keys, job.id, held(client, keys, job.id), kind) == 0
        jobs[kind] = job.id
    job = queue.add("j", {"kind": "active"})
    assert take(client, keys, "dead", lock_ms=150) == job.id
    jobs["active"] = job.id
    jobs["waiting"] = queue.add("j", {}).id
    jobs["waiting2"] = queue.add("j", {}).id
    jobs["prioritized"] = queue.add("j", {}, priority=2).id
    jobs["delayed"] = queue.add("j", {}, delay=0.15).id
    jobs["delayed2"] = queue.add("j", {}, delay=0.15).id
    jobs["grouped"] = queue.add("j", {}, group="g").id
    return jobs


def damage(client: redis.Redis, keys: QueueKeys, job_id: str, how: tuple[str, str, str]) -> None:
    kind, what, value = how
    key = keys.job(job_id)
    if kind == "field":
        client.hset(key, what, value)
    elif kind == "drop":
        client.hdel(key, what)
    elif kind == "delete":
        client.delete(key)
    elif kind == "type":
        client.delete(key)
        {"string": lambda: client.set(key, "x"), "list": lambda: client.rpush(key, "x"),
         "set": lambda: client.sadd(key, "x")}[what]()
    else:  # the lock key, of another type and without expiry
        client.delete(key + ":lock")
        if what == "list":
            client.rpush(key + ":lock", "x")
        else:
            client.set(key + ":lock", "not-a-token")


async def work_until(queue_name: str, redis_url: str, done: Any) -> None:
    async def process(job: Any) -> str:
        return "ok"

    w = Worker(queue_name, process, connection=redis_url, concurrency=3, stalled_interval=0.1,
               lock_duration=5, drain_delay=0.1, shutdown_grace=2)
    async with w:
        await wait_for(done, timeout=20, what="every job in a final state", interval=0.02)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(target=st.sampled_from(PENDING + tuple(FINISHED)), how=DAMAGE, promote_first=st.booleans())
def test_one_damaged_job_never_takes_others_with_it(
    redis_url: str, client: redis.Redis, target: str, how: tuple[str, str, str],
    promote_first: bool,
) -> None:
    queue_name = f"c{uuid.uuid4().hex[:12]}"
    queue = Queue(queue_name, connection=redis_url)
    keys = QueueKeys("bull", queue_name)
    try:
        jobs = build(queue, client, keys)
        bad = jobs[target]
        damage(client, keys, bad, how)
        if promote_first:  # promote.lua, before fetch's own promotion
            queue.promote_jobs()

        def states() -> dict[str, str]:
            return {kind: queue.get_job_state(job_id) for kind, job_id in jobs.items()}

        def settled() -> bool:
            now = states()
            others = all(now[k] == "completed" for k in PENDING if k != target)
            return others and now[target] in ("completed", "failed")

        asyncio.run(work_until(queue_name, redis_url, settled))
        final = states()
        for kind, state in FINISHED.items():  # finished jobs stay finished
            assert final[kind] in ((state, "failed") if kind == target else (state,))
        if final[target] == "failed" and target in PENDING:
            reason = client.hget(keys.job(bad), "failedReason") or ""
            assert reason.startswith(REASONS), reason
        assert "unknown" not in final.values()
        # Clean-up scripts go through damaged keys too.
        queue.clean(0, state="completed")
        queue.clean(0, state="failed")
        queue.obliterate(force=True)
        assert client.keys(f"bull:{queue_name}:*") == []
    finally:
        queue.obliterate(force=True)
        queue.close()


# --------------------------------------------------------------------------- fixed examples


@pytest.fixture
def queue(redis_url: str, queue_name: str) -> Iterator[Queue]:
    q = Queue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        q.close()


@pytest.fixture
def keys(queue_name: str) -> QueueKeys:
    return QueueKeys("bull", queue_name)


def reason(client: redis.Redis, keys: QueueKeys, job_id: str) -> str:
    return client.hget(keys.job(job_id), "failedReason") or ""


def test_the_issue_case_promote_fails_the_damaged_job_alone(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    ids = [queue.add("j", {}, delay=60).id for _ in range(3)]
    client.hset(keys.job(ids[1]), "priority", "abc")
    assert queue.promote_jobs() == 3
    assert [queue.get_job_state(i) for i in ids] == ["waiting", "failed", "waiting"]
    assert reason(client, keys, ids[1]) == \
        "job hash corrupt: field priority='abc' is not a number"


def test_fetch_promotes_around_a_damaged_delayed_job(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    ids = [queue.add("j", {}, delay=0.05).id for _ in range(3)]
    client.hset(keys.job(ids[0]), "priority", "abc")
    client.delete(keys.job(ids[2]))
    taken: list[str] = []

    def all_promoted() -> bool:
        reply = script(client, keys, "moveToActive", token="t", lockMs=1000, n=3)
        taken.extend(str(j[0]) for j in reply[2:])
        return client.zcard(keys.delayed) == 0

    wait_for_sync(all_promoted, timeout=5, what="the delayed jobs to come due")
    assert taken == [ids[1]]
    assert queue.get_job_state(ids[0]) == "failed"
    assert queue.get_job_state(ids[2]) == "failed"
    assert reason(client, keys, ids[2]).startswith("job hash missing")


@pytest.mark.parametrize("field,value", [("priority", "nan"), ("timestamp", ""),
                                         ("delay", "soon")])
def test_fetch_hands_out_a_job_whose_damage_does_not_touch_running_it(
    queue: Queue, client: redis.Redis, keys: QueueKeys, field: str, value: str
) -> None:
    # Running a job does not use these fields; promotion, retry and clean,
    # which do, check them (tests above and below).
    first = queue.add("j", {}).id
    client.hset(keys.job(first), field, value)
    reply = script(client, keys, "moveToActive", token="t", lockMs=1000, n=1)
    assert [str(j[0]) for j in reply[2:]] == [first]
    assert queue.get_job_state(first) == "active"


@pytest.mark.parametrize("field,value", [("ats", "x"), ("atm", "1.5"), ("ats", "1e3")])
def test_fetch_fails_a_damaged_waiting_job_and_hands_out_the_next(
    queue: Queue, client: redis.Redis, keys: QueueKeys, field: str, value: str
) -> None:
    first, second = queue.add("j", {}).id, queue.add("j", {}).id
    client.hset(keys.job(first), field, value)
    reply = script(client, keys, "moveToActive", token="t", lockMs=1000, n=1)
    assert [str(j[0]) for j in reply[2:]] == [second]
    assert queue.get_job_state(first) == "failed"
    assert f"field {field}=" in reason(client, keys, first)


def test_fetch_fails_a_job_whose_key_is_not_a_hash(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    first, second = queue.add("j", {}).id, queue.add("j", {}).id
    client.delete(keys.job(first))
    client.rpush(keys.job(first), "x")
    reply = script(client, keys, "moveToActive", token="t", lockMs=1000, n=2)
    assert [str(j[0]) for j in reply[2:]] == [second]
    assert reason(client, keys, first) == "job hash corrupt: the key holds a list, not a hash"
    assert queue.get_job(first) is not None  # a readable record of the failure


def test_a_batch_of_finishes_goes_on_past_a_damaged_job(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    ids = [queue.add("j", {}).id for _ in range(3)]
    reply = script(client, keys, "moveToActive", token="t", lockMs=10_000, n=3)
    tokens = {str(j[0]): str(j[1]) for j in reply[2:]}
    client.hset(keys.job(ids[1]), "atm", "abc")
    items = [{"id": i, "lockToken": tokens[i], "target": "completed", "value": "1",
              "keepCount": -1, "keepAgeMs": 0} for i in ids]
    codes = script(client, keys, "moveToFinished", items=items)[0]
    assert codes == [0, S.E_JOB_CORRUPT, 0]
    assert [queue.get_job_state(i) for i in ids] == ["completed", "failed", "completed"]
    assert reason(client, keys, ids[1]) == "job hash corrupt: field atm='abc' is not an integer"
    with pytest.raises(JobStateError, match="damaged"):
        S.check(S.E_JOB_CORRUPT, op="finish", job_id=ids[1])


def test_retry_of_a_damaged_job_fails_it_alone(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    job_id = queue.add("j", {}).id
    assert take(client, keys, "t") == job_id
    client.hset(keys.job(job_id), "ats", "many")
    assert script(client, keys, "retryJob", id=job_id, lockToken=held(client, keys, job_id),
                  dueMs=0, countAttempt=True, undoStart=True) == S.E_JOB_CORRUPT
    assert queue.get_job_state(job_id) == "failed"


def test_the_stalled_check_fails_a_damaged_job_and_moves_the_others_back(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    ids = [queue.add("j", {}).id for _ in range(4)]
    script(client, keys, "moveToActive", token="t", lockMs=1, n=4)
    client.hset(keys.job(ids[0]), "stc", "zz")
    client.delete(keys.job(ids[2]))
    client.delete(keys.lock(ids[1]))
    client.rpush(keys.lock(ids[1]), "junk")  # a lock of another type is no lock
    client.delete(keys.lock(ids[3]))
    client.set(keys.lock(ids[3]), "t:3")  # nor is one without an expiry
    wait_for_sync(lambda: not client.exists(keys.lock(ids[0]), keys.lock(ids[2])), timeout=5,
                  what="the 1 ms locks to expire")
    assert script(client, keys, "moveStalledJobsToWait", maxStalled=1, intervalMs=1) == [[], []]
    client.delete(keys.key("stalled-check"))
    stalled, failed = script(client, keys, "moveStalledJobsToWait", maxStalled=1, intervalMs=1)
    assert sorted(stalled) == sorted([ids[1], ids[3]])
    assert sorted(failed) == sorted([ids[0], ids[2]])
    assert [queue.get_job_state(i) for i in ids] == ["failed", "waiting", "failed", "waiting"]


def test_retry_jobs_refails_a_damaged_job_and_retries_the_others(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    ids = []
    for _ in range(3):
        job_id = queue.add("j", {}).id
        assert take(client, keys, "t") == job_id
        assert finish(client, keys, job_id, held(client, keys, job_id), "failed") == 0
        ids.append(job_id)
    client.delete(keys.job(ids[1]))
    client.set(keys.job(ids[1]), "x")
    assert queue.retry_jobs("failed") == 3
    assert [queue.get_job_state(i) for i in ids] == ["waiting", "failed", "waiting"]
    assert reason(client, keys, ids[1]).startswith("job hash corrupt: the key holds a string")
    record = queue.get_job(ids[1])  # the failure record that replaced the string
    assert record is not None
    client.hset(keys.job(ids[1]), "priority", "abc")
    with pytest.raises(JobStateError, match="damaged"):
        record.retry()
    assert queue.get_job_state(ids[1]) == "failed"


def test_lock_renewal_survives_a_lock_key_of_another_type(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    ids = [queue.add("j", {}).id for _ in range(2)]
    reply = script(client, keys, "moveToActive", token="t", lockMs=10_000, n=2)
    tokens = [str(j[1]) for j in reply[2:]]
    client.delete(keys.lock(ids[0]))
    client.sadd(keys.lock(ids[0]), "x")
    lost = script(client, keys, "extendLocks", ids=ids, tokens=tokens, lockMs=20_000)
    assert lost == [ids[0]]
    assert client.pttl(keys.lock(ids[1])) > 10_000


def test_clean_skips_a_job_of_unknown_age_and_removes_the_rest(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    ids = [queue.add("j", {}, delay=60).id for _ in range(3)]
    client.hset(keys.job(ids[0]), "timestamp", "yesterday")
    client.delete(keys.job(ids[2]))
    client.set(keys.job(ids[2]), "x")
    assert queue.clean(0, state="delayed") == [ids[1]]
    assert queue.get_job_state(ids[0]) == "delayed"
    assert queue.get_job_state(ids[2]) == "delayed"
    assert queue.remove(ids[2])  # an explicit remove takes a damaged job away
    queue.obliterate(force=True)
    assert client.keys(keys.key("*")) == []


def test_cancel_fails_a_damaged_job_with_its_reason(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    job_id = queue.add("j", {}).id
    client.delete(keys.job(job_id))
    client.rpush(keys.job(job_id), "x")
    queue.cancel_job(job_id, "no longer needed")
    assert queue.get_job_state(job_id) == "failed"
    assert reason(client, keys, job_id).startswith("no longer needed (job hash corrupt")


async def test_a_worker_completes_every_job_around_damaged_ones(
    redis_url: str, queue_name: str, client: redis.Redis
) -> None:
    keys = QueueKeys("bull", queue_name)
    queue = AsyncQueue(queue_name, connection=redis_url)
    try:
        ids = [(await queue.add("j", {"i": i}, delay=0.05 if i % 2 else 0)).id
               for i in range(12)]
        damaged = {ids[1]: ("priority", "abc"), ids[4]: ("atm", "x"), ids[7]: ("opts", "{")}
        for job_id, (field, value) in damaged.items():
            client.hset(keys.job(job_id), field, value)

        async def settled() -> bool:
            states = [await queue.get_job_state(i) for i in ids]
            return all(s == ("failed" if i in damaged else "completed")
                       for i, s in zip(ids, states, strict=True))

        await work_until(queue_name, redis_url, settled)
        assert reason(client, keys, ids[7]).startswith("corrupt job: field 'opts'")
    finally:
        await queue.obliterate(force=True)
        await queue.close()


def test_a_damaged_iteration_count_does_not_stop_a_scheduler(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    first = queue.upsert_job_scheduler("s", every=60, template={"name": "tick"})
    client.hset(keys.key("repeat:s"), "ic", "abc")
    opts = client.hget(keys.job(first.id), "opts")
    assert script(client, keys, "updateJobScheduler", id="s", cur=first.id, opts=opts) == 1
    (entry,) = client.zrange(keys.key("repeat"), 0, -1, withscores=True)
    nxt = f"repeat:s:{int(entry[1])}"
    assert nxt != first.id
    assert queue.get_job_state(nxt) == "delayed"  # the next iteration exists
    assert client.hget(keys.key("repeat:s"), "ic") == "1"


def test_promoting_one_damaged_job_by_id_fails_it_and_says_so(
    queue: Queue, client: redis.Redis, keys: QueueKeys
) -> None:
    job = queue.add("j", {}, delay=60)
    client.hset(keys.job(job.id), "priority", "1e999")
    with pytest.raises(JobStateError, match="damaged"):
        job.promote()
    assert queue.get_job_state(job.id) == "failed"
    assert reason(client, keys, job.id) == \
        "job hash corrupt: field priority='1e999' is not a number"
