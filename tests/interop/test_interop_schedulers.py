"""Job schedulers and deduplication modes shared between pyqueue and the real
``bullmq@6.7.0`` (Node).

- a scheduler upserted by pyqueue is continued by a BullMQ Worker, and one
  upserted by BullMQ (``bullmq_sched.mjs``) by a pyqueue Worker;
- the ``repeat:<id>`` hash and the pending iteration written by pyqueue match
  BullMQ's for the same upsert (field names and parsed values; times aside);
- deduplication with ``replace`` (debounce), ``keep_last_if_active`` and the
  simple/throttle key lifetimes behave the same whichever library adds or works.

BullMQ's ``work`` command (``bullmq_side.mjs``) blocks until it has finished
the asked number of jobs; pyqueue workers are awaited with deadlines.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from pyqueue import AsyncQueue, Job, Worker

from .conftest import DEFAULT_TIMEOUT, Bull

pytestmark = pytest.mark.interop

SCHED = Path(__file__).resolve().parent / "bullmq_sched.mjs"
DEADLINE = 20.0


class BullSched(Bull):
    """``bullmq_sched.mjs`` commands (upsert, scheduler, schedulers, remove, add)."""

    def __call__(self, command: str, *, timeout: float = DEFAULT_TIMEOUT,
                 **args: Any) -> dict[str, Any]:
        import subprocess

        payload = {"redis": self.redis_url, **args}
        proc = subprocess.run([self.node, str(SCHED), command, json.dumps(payload)],
                              capture_output=True, text=True, timeout=timeout, cwd=SCHED.parent)
        if proc.returncode != 0:
            pytest.fail(f"bullmq_sched {command} {payload} exited {proc.returncode}\n"
                        f"stdout: {proc.stdout}\nstderr:\n{proc.stderr}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result


@pytest.fixture
def sched(node_harness: str, redis_url: str) -> BullSched:
    return BullSched(node_harness, redis_url)


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> AsyncIterator[AsyncQueue]:
    q = AsyncQueue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        await q.close()


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def hash_of(r: redis.Redis, key: str) -> dict[str, str]:
    return {text(k): text(v) for k, v in r.hgetall(key).items()}


def redis_ms(r: redis.Redis) -> int:
    sec, usec = r.time()
    return int(sec) * 1000 + int(usec) // 1000


def iteration_ms(job_id: str) -> int:
    return int(job_id.rsplit(":", 1)[1])


def pending_iterations(r: redis.Redis, queue_name: str, sid: str) -> list[str]:
    base = f"bull:{queue_name}:"
    pipe = r.pipeline(transaction=True)
    pipe.lrange(base + "wait", 0, -1)
    pipe.zrange(base + "delayed", 0, -1)
    pipe.zrange(base + "prioritized", 0, -1)
    ids = [text(j) for group in pipe.execute() for j in group]
    return [j for j in ids if j.startswith(f"repeat:{sid}:")]


def events(r: redis.Redis, queue_name: str, *names: str) -> list[dict[str, str]]:
    out = []
    for _, fields in r.xrange(f"bull:{queue_name}:events"):
        entry = {text(k): text(v) for k, v in fields.items()}
        if not names or entry["event"] in names:
            out.append(entry)
    return out


async def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def make_worker(queue_name: str, processor: Any, redis_url: str) -> Worker:
    return Worker(queue_name, processor, connection=redis_url, shutdown_grace=2)


# --------------------------------------------------------------------------- continuation


async def test_every_scheduler_from_pyqueue_is_continued_by_a_bullmq_worker(
        queue_name: str, queue: AsyncQueue, bull: Bull, redis_client: redis.Redis) -> None:
    first = await queue.upsert_job_scheduler(
        "py-every", every=0.3, template={"name": "beat", "data": {"from": "py"}})
    result = await bull.aio("work", queue=queue_name, count=3, timeoutMs=15000)
    assert result["timedOut"] is False
    processed = result["processed"]
    assert len(processed) == 3
    assert processed[0]["id"] == first.id
    assert all((p["name"], p["data"]) == ("beat", {"from": "py"}) for p in processed)
    ids = [p["id"] for p in processed]
    assert len(set(ids)) == 3
    slots = [iteration_ms(i) for i in ids]
    assert all((b - a) % 300 == 0 and b > a for a, b in itertools.pairwise(slots))
    assert slots[2] - slots[1] == 300
    # ic grew by 3 (1 -> 4) and exactly one iteration is pending
    assert hash_of(redis_client, f"bull:{queue_name}:repeat:py-every")["ic"] == "4"
    (pending,) = pending_iterations(redis_client, queue_name, "py-every")
    nxt = await queue.get_job(pending)
    assert nxt is not None
    assert (nxt.name, nxt.data) == ("beat", {"from": "py"})
    assert nxt.opts["repeat"]["count"] == 4
    info = await queue.get_job_scheduler("py-every")
    assert info is not None and info["iteration_count"] == 4


async def test_cron_scheduler_with_tz_from_pyqueue_is_continued_by_a_bullmq_worker(
        queue_name: str, queue: AsyncQueue, bull: Bull, redis_client: redis.Redis) -> None:
    await queue.upsert_job_scheduler("py-cron", pattern="* * * * * *", tz="America/New_York",
                                     template={"data": {"c": 1}})
    result = await bull.aio("work", queue=queue_name, count=2, timeoutMs=15000)
    assert result["timedOut"] is False
    ids = [p["id"] for p in result["processed"]]
    assert len(set(ids)) == 2
    assert all(iteration_ms(i) % 1000 == 0 for i in ids)
    assert iteration_ms(ids[1]) > iteration_ms(ids[0])
    assert hash_of(redis_client, f"bull:{queue_name}:repeat:py-cron")["ic"] == "3"
    (pending,) = pending_iterations(redis_client, queue_name, "py-cron")
    nxt = await queue.get_job(pending)
    assert nxt is not None
    assert nxt.opts["repeat"] == {"pattern": "* * * * * *", "tz": "America/New_York",
                                  "count": 3}
    assert nxt.opts["prevMillis"] == iteration_ms(pending)
    assert nxt.data == {"c": 1}


async def test_every_scheduler_from_bullmq_is_continued_by_a_pyqueue_worker(
        redis_url: str, queue_name: str, queue: AsyncQueue, sched: BullSched,
        redis_client: redis.Redis) -> None:
    up = await asyncio.to_thread(
        sched, "upsert", queue=queue_name, id="bm-every", repeat={"every": 300},
        template={"name": "bm-beat", "data": {"from": "bm"}, "opts": {"attempts": 2}})
    first_id = up["job"]["id"]
    runs: list[tuple[str, str, Any, Any]] = []

    async def process(job: Job) -> Any:
        runs.append((job.id, job.name, job.data, job.opts.get("attempts")))
        return "ok"

    w = make_worker(queue_name, process, redis_url)
    try:
        await wait_for(lambda: len(runs) >= 3, DEADLINE, "3 iterations")
    finally:
        await w.close()
    assert runs[0][0] == first_id
    assert all(r[1:] == ("bm-beat", {"from": "bm"}, 2) for r in runs)
    ids = [r[0] for r in runs]
    assert len(set(ids)) == len(ids)
    slots = [iteration_ms(i) for i in ids]
    assert all((b - a) % 300 == 0 and b > a for a, b in itertools.pairwise(slots))
    ic = int(hash_of(redis_client, f"bull:{queue_name}:repeat:bm-every")["ic"])
    assert ic == len(runs) + 1
    assert len(pending_iterations(redis_client, queue_name, "bm-every")) == 1
    seen = (await asyncio.to_thread(sched, "scheduler", queue=queue_name, id="bm-every"))
    assert seen["scheduler"]["iterationCount"] == ic


async def test_cron_scheduler_from_bullmq_is_continued_by_a_pyqueue_worker(
        redis_url: str, queue_name: str, queue: AsyncQueue, sched: BullSched,
        redis_client: redis.Redis) -> None:
    await asyncio.to_thread(sched, "upsert", queue=queue_name, id="bm-cron",
                            repeat={"pattern": "* * * * * *", "tz": "Europe/Berlin"},
                            template={"name": "bm-tick"})
    runs: list[str] = []
    w = make_worker(queue_name, lambda job: runs.append(job.id), redis_url)
    try:
        await wait_for(lambda: len(runs) >= 2, DEADLINE, "2 iterations")
    finally:
        await w.close()
    assert len(set(runs)) == len(runs)
    assert all(iteration_ms(i) % 1000 == 0 for i in runs)
    assert len(pending_iterations(redis_client, queue_name, "bm-cron")) == 1
    (pending,) = pending_iterations(redis_client, queue_name, "bm-cron")
    nxt = await queue.get_job(pending)
    assert nxt is not None and nxt.name == "bm-tick"
    assert nxt.opts["repeat"]["tz"] == "Europe/Berlin"
    assert nxt.opts["repeat"]["count"] == len(runs) + 1


async def test_schedulers_are_listed_and_removed_across_libraries(
        queue_name: str, queue: AsyncQueue, sched: BullSched,
        redis_client: redis.Redis) -> None:
    py_job = await queue.upsert_job_scheduler("from-py", pattern="0 9 * * *",
                                              tz="Europe/Berlin")
    await asyncio.to_thread(sched, "upsert", queue=queue_name, id="from-bm",
                            repeat={"every": 60000}, template={"data": {"x": 1}})
    listed = await asyncio.to_thread(sched, "schedulers", queue=queue_name)
    assert {s["key"] for s in listed["schedulers"]} == {"from-py", "from-bm"}
    py_seen = next(s for s in listed["schedulers"] if s["key"] == "from-py")
    assert (py_seen["pattern"], py_seen["tz"], py_seen["next"]) == (
        "0 9 * * *", "Europe/Berlin", iteration_ms(py_job.id))
    ours = {s["id"]: s for s in await queue.get_job_schedulers()}
    assert ours["from-bm"]["every"] == 60
    assert ours["from-bm"]["template"]["data"] == {"x": 1}

    removed = await asyncio.to_thread(sched, "remove", queue=queue_name, id="from-py")
    assert removed == {"removed": True}
    assert await queue.get_job(py_job.id) is None
    assert await queue.get_job_scheduler("from-py") is None
    assert await queue.remove_job_scheduler("from-bm") is True
    assert pending_iterations(redis_client, queue_name, "from-bm") == []
    assert (await asyncio.to_thread(sched, "schedulers", queue=queue_name)) == {"schedulers": []}


# --------------------------------------------------------------------------- layout


def _now_ms() -> int:
    return int(time.time() * 1000)


_START = _now_ms() + 3_600_000
_END = _START + 3_600_000

LAYOUT_CASES = {
    "template": (
        {"every": 1.5, "template": {
            "name": "tpl", "data": {"a": 1},
            "opts": {"attempts": 3, "backoff": {"type": "fixed", "delay": 0.1},
                     "remove_on_complete": True}}},
        {"repeat": {"every": 1500}, "template": {
            "name": "tpl", "data": {"a": 1},
            "opts": {"attempts": 3, "backoff": {"type": "fixed", "delay": 100},
                     "removeOnComplete": True}}}),
    "cron_tz": (
        {"pattern": "0 9 * * *", "tz": "Europe/Berlin", "template": {"data": {"d": 1},
                                                                   "opts": {"attempts": 2}}},
        {"repeat": {"pattern": "0 9 * * *", "tz": "Europe/Berlin"},
         "template": {"data": {"d": 1}, "opts": {"attempts": 2}}}),
    "dates_limit": (
        {"every": 60, "limit": 3, "start_date": _START / 1000, "end_date": _END / 1000,
         "template": {"data": {"w": 1}, "opts": {"attempts": 1}}},
        {"repeat": {"every": 60000, "limit": 3, "startDate": _START, "endDate": _END},
         "template": {"data": {"w": 1}, "opts": {"attempts": 1}}}),
    "cron_immediately": (
        {"pattern": "0 9 * * *", "immediately": True,
         "template": {"name": "imm", "data": {"i": 1}, "opts": {"attempts": 1}}},
        {"repeat": {"pattern": "0 9 * * *", "immediately": True},
         "template": {"name": "imm", "data": {"i": 1}, "opts": {"attempts": 1}}}),
}

# Values that depend on when each library ran (clock), compared separately.
_TIME_HASH_FIELDS = {"offset"}
_TIME_JOB_FIELDS = {"timestamp", "delay"}
_TIME_OPTS = {"timestamp", "delay", "jobId", "prevMillis"}
_JSON_FIELDS = {"data", "opts"}


def _parsed(fields: dict[str, str]) -> dict[str, Any]:
    return {k: json.loads(v) if k in _JSON_FIELDS else v for k, v in fields.items()}


def _layouts(r: redis.Redis, queue_name: str, sid: str,
             job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    base = f"bull:{queue_name}:"
    return (_parsed(hash_of(r, f"{base}repeat:{sid}")), _parsed(hash_of(r, base + job_id)))


def _check_times(hash_: dict[str, Any], job: dict[str, Any], job_id: str) -> None:
    """Internal consistency of the clock-dependent values."""
    ms = iteration_ms(job_id)
    assert int(job["delay"]) == max(ms - int(job["timestamp"]), 0)
    assert job["opts"]["jobId"] == job_id
    assert int(job["opts"]["delay"]) == int(job["delay"])
    if "prevMillis" in job["opts"]:
        assert job["opts"]["prevMillis"] == ms
    if "every" in hash_ and "startDate" not in hash_:
        assert int(hash_["offset"]) == ms % int(hash_["every"])


def _layout_mismatches(r: redis.Redis, case: str, py_queue: str, py_id: str,
                       bm_queue: str, bm_id: str) -> list[str]:
    """How pyqueue's scheduler hash and pending iteration differ from BullMQ's."""
    py_hash, py_fields = _layouts(r, py_queue, case, py_id)
    bm_hash, bm_fields = _layouts(r, bm_queue, case, bm_id)
    out = []

    def strip(d: dict[str, Any], drop: set[str]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in drop}

    # scheduler hash: same fields, same values (the every-offset depends on the clock)
    if sorted(py_hash) != sorted(bm_hash):
        out.append(f"hash fields {sorted(py_hash)} != {sorted(bm_hash)}")
    if strip(py_hash, _TIME_HASH_FIELDS) != strip(bm_hash, _TIME_HASH_FIELDS):
        out.append(f"hash values {py_hash} != {bm_hash}")
    # pending iteration: same fields, values and opts apart from the times
    if sorted(py_fields) != sorted(bm_fields):
        out.append(f"job fields {sorted(py_fields)} != {sorted(bm_fields)}")
    drop = _TIME_JOB_FIELDS | {"opts"}
    if strip(py_fields, drop) != strip(bm_fields, drop):
        out.append(f"job values {py_fields} != {bm_fields}")
    if strip(py_fields["opts"], _TIME_OPTS) != strip(bm_fields["opts"], _TIME_OPTS):
        out.append(f"job opts {py_fields['opts']} != {bm_fields['opts']}")
    if sorted(py_fields["opts"]) != sorted(bm_fields["opts"]):
        out.append(f"job opts keys {sorted(py_fields['opts'])} != {sorted(bm_fields['opts'])}")
    # the same slot where the time does not depend on "now"; the same state
    if case in ("cron_tz", "dates_limit") and iteration_ms(py_id) != iteration_ms(bm_id):
        out.append(f"slot {py_id} != {bm_id}")
    if (int(py_fields["delay"]) == 0) != (int(bm_fields["delay"]) == 0):
        out.append(f"delay {py_fields['delay']} vs {bm_fields['delay']}")
    for h, fields, job_id in ((py_hash, py_fields, py_id), (bm_hash, bm_fields, bm_id)):
        _check_times(h, fields, job_id)
    return out


async def test_scheduler_layout_matches_bullmq(
        queue_name: str, redis_url: str, sched: BullSched, redis_client: redis.Redis) -> None:
    """The same upserts (every+template, cron+tz, dates+limit, cron+immediately) made by
    pyqueue and by BullMQ on two queues write the same fields and values."""
    py_queue, bm_queue = f"{queue_name}py", f"{queue_name}bm"
    py_ids = {}
    async with AsyncQueue(py_queue, connection=redis_url) as q:
        for case, (py_args, _) in LAYOUT_CASES.items():
            py_ids[case] = (await q.upsert_job_scheduler(case, **py_args)).id
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(sched, "upsert", queue=bm_queue, id=case, **bm_args)
                   for case, (_, bm_args) in LAYOUT_CASES.items()}
        bm_ids = {case: f.result()["job"]["id"] for case, f in futures.items()}
    mismatches = {case: _layout_mismatches(redis_client, case, py_queue, py_ids[case],
                                           bm_queue, bm_ids[case])
                  for case in LAYOUT_CASES}
    assert mismatches == {case: [] for case in LAYOUT_CASES}


async def test_scheduler_without_template_layout_matches_bullmq(
        queue_name: str, redis_url: str, sched: BullSched, redis_client: redis.Redis) -> None:
    py_queue, bm_queue = f"{queue_name}py", f"{queue_name}bm"
    async with AsyncQueue(py_queue, connection=redis_url) as q:
        py_job = await q.upsert_job_scheduler("bare", pattern="0 9 * * *", tz="Europe/Berlin")
    bm = await asyncio.to_thread(sched, "upsert", queue=bm_queue, id="bare",
                                 repeat={"pattern": "0 9 * * *", "tz": "Europe/Berlin"})
    py_hash, py_fields = _layouts(redis_client, py_queue, "bare", py_job.id)
    bm_hash, bm_fields = _layouts(redis_client, bm_queue, "bare", bm["job"]["id"])
    assert py_job.id == bm["job"]["id"]
    assert sorted(py_hash) == sorted(bm_hash)
    assert sorted(py_fields["opts"]) == sorted(bm_fields["opts"])
    py_seen = await asyncio.to_thread(sched, "scheduler", queue=py_queue, id="bare")
    bm_seen = await asyncio.to_thread(sched, "scheduler", queue=bm_queue, id="bare")
    assert py_seen == bm_seen


# --------------------------------------------------------------------------- dedup


async def test_bullmq_debounced_job_is_replaced_by_a_pyqueue_add(
        queue_name: str, queue: AsyncQueue, sched: BullSched, bull: Bull,
        redis_client: redis.Redis) -> None:
    added = await asyncio.to_thread(sched, "add", queue=queue_name, jobs=[{
        "name": "deb", "data": {"v": 1},
        "opts": {"delay": 5000, "deduplication": {"id": "d1", "ttl": 10000, "replace": True}}}])
    old = added["jobs"][0]["id"]
    pttl = redis_client.pttl(f"bull:{queue_name}:de:d1")
    new = await queue.add("deb", {"v": 2}, delay=5,
                          deduplication={"id": "d1", "ttl": 10, "replace": True})
    assert new.id != old
    assert await queue.get_job(old) is None
    assert await queue.get_job_state(new.id) == "delayed"
    assert await queue.get_deduplication_job_id("d1") == new.id
    assert redis_client.pttl(f"bull:{queue_name}:de:d1") <= pttl  # ttl kept
    seen = await bull.aio("job", queue=queue_name, id=new.id)
    assert seen["job"]["data"] == {"v": 2}
    assert (await bull.aio("job", queue=queue_name, id=old))["job"] is None
    tail = [(e["event"], e["jobId"]) for e in events(redis_client, queue_name)][2:]
    assert tail == [("removed", old), ("deduplicated", new.id), ("added", new.id),
                    ("delayed", new.id)]
    (dedup,) = events(redis_client, queue_name, "deduplicated")
    assert dedup["deduplicatedJobId"] == old


async def test_pyqueue_debounced_job_is_replaced_by_a_bullmq_add(
        queue_name: str, queue: AsyncQueue, sched: BullSched,
        redis_client: redis.Redis) -> None:
    old = await queue.add("deb", {"v": 1}, delay=5,
                          deduplication={"id": "d2", "ttl": 10, "replace": True})
    added = await asyncio.to_thread(sched, "add", queue=queue_name, jobs=[{
        "name": "deb", "data": {"v": 2},
        "opts": {"delay": 5000, "deduplication": {"id": "d2", "ttl": 10000, "replace": True}}}])
    new_id = added["jobs"][0]["id"]
    assert new_id != old.id
    assert await queue.get_job(old.id) is None
    new = await queue.get_job(new_id)
    assert new is not None and new.data == {"v": 2}
    assert await queue.get_job_state(new_id) == "delayed"
    assert await queue.get_deduplication_job_id("d2") == new_id
    tail = [(e["event"], e["jobId"]) for e in events(redis_client, queue_name)][2:]
    assert tail == [("removed", old.id), ("deduplicated", new_id), ("added", new_id),
                    ("delayed", new_id)]
    # once promoted (no longer delayed), BullMQ's duplicate is ignored
    await new.promote()
    again = await asyncio.to_thread(sched, "add", queue=queue_name, jobs=[{
        "name": "deb", "data": {"v": 3},
        "opts": {"delay": 5000, "deduplication": {"id": "d2", "ttl": 10000, "replace": True}}}])
    assert again["jobs"][0]["id"] == new_id
    stored = await queue.get_job(new_id)
    assert stored is not None and stored.data == {"v": 2}


async def test_keep_last_if_active_duplicates_from_pyqueue_run_under_a_bullmq_worker(
        queue_name: str, queue: AsyncQueue, bull: Bull, redis_client: redis.Redis) -> None:
    opts = {"id": "kl", "keep_last_if_active": True}
    first = await queue.add("k", {"v": 1, "sleepMs": 1500}, deduplication=opts)
    work = asyncio.ensure_future(bull.aio("work", queue=queue_name, count=2, timeoutMs=15000))
    try:
        async def active() -> bool:
            return await queue.get_job_state(first.id) == "active"
        await wait_for(active, DEADLINE, "the first job to be active under BullMQ")
        dups = [await queue.add("k", {"v": v}, deduplication=opts) for v in (2, 3)]
        assert [d.id for d in dups] == [first.id, first.id]
        result = await asyncio.wait_for(work, DEADLINE)
    finally:
        if not work.done():
            await asyncio.wait([work], timeout=DEADLINE)
    assert result["timedOut"] is False
    processed = result["processed"]
    assert processed[0]["id"] == first.id
    assert processed[1]["id"] != first.id
    assert processed[1]["data"] == {"v": 3}
    counts = await queue.get_job_counts()
    assert counts["completed"] == 2 and sum(counts.values()) == 2
    assert await queue.get_deduplication_job_id("kl") is None


async def test_keep_last_if_active_duplicates_from_bullmq_run_under_a_pyqueue_worker(
        redis_url: str, queue_name: str, queue: AsyncQueue, sched: BullSched) -> None:
    release = asyncio.Event()
    ran: list[tuple[str, Any]] = []

    async def process(job: Job) -> Any:
        ran.append((job.id, job.data))
        if len(ran) == 1:
            await release.wait()
        return "ok"

    opts = {"deduplication": {"id": "kl2", "keepLastIfActive": True}}
    first = await asyncio.to_thread(sched, "add", queue=queue_name,
                                    jobs=[{"name": "k", "data": {"v": 1}, "opts": opts}])
    first_id = first["jobs"][0]["id"]
    w = make_worker(queue_name, process, redis_url)
    try:
        await wait_for(lambda: ran, DEADLINE, "first job active")
        dups = await asyncio.to_thread(sched, "add", queue=queue_name, jobs=[
            {"name": "k", "data": {"v": v}, "opts": opts} for v in (2, 3)])
        assert [d["id"] for d in dups["jobs"]] == [first_id, first_id]
        release.set()
        await wait_for(lambda: len(ran) >= 2, DEADLINE, "the kept duplicate")

        async def both_done() -> bool:
            return (await queue.get_job_counts())["completed"] == 2
        await wait_for(both_done, DEADLINE, "both completed")
    finally:
        release.set()
        await w.close()
    assert ran[0] == (first_id, {"v": 1})
    assert ran[1][0] != first_id and ran[1][1] == {"v": 3}
    assert len(ran) == 2
    assert await queue.get_deduplication_job_id("kl2") is None


async def test_dedup_key_lifetimes_across_libraries(
        redis_url: str, queue_name: str, queue: AsyncQueue, sched: BullSched, bull: Bull,
        redis_client: redis.Redis) -> None:
    # simple key from pyqueue, job completed by BullMQ: released
    simple = await queue.add("s", {}, deduplication={"id": "simple"})
    # throttle key from BullMQ, job completed by BullMQ: kept until the ttl
    added = await asyncio.to_thread(sched, "add", queue=queue_name, jobs=[
        {"name": "t", "data": {}, "opts": {"deduplication": {"id": "thr", "ttl": 30000}}}])
    throttled = added["jobs"][0]["id"]
    result = await bull.aio("work", queue=queue_name, count=2, timeoutMs=15000)
    assert sorted(p["id"] for p in result["processed"]) == sorted([simple.id, throttled])
    assert await queue.get_deduplication_job_id("simple") is None
    assert (await queue.add("s", {}, deduplication={"id": "simple"})).id != simple.id
    assert await queue.get_deduplication_job_id("thr") == throttled
    assert (await queue.add("t", {}, deduplication={"id": "thr", "ttl": 30})).id == throttled
    assert redis_client.pttl(f"bull:{queue_name}:de:thr") > 20000
