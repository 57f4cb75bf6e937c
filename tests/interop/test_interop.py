"""pyqueue and the real ``bullmq@6.7.0`` (Node) on the same queues.

Each test has one library produce (or break) and the other consume, then
checks what a user of either library sees: return values, failure reasons,
attempts, states, counts, events and the raw Redis layout. The Node side is
``bullmq_side.mjs`` (see its header); its ``work`` command blocks until the
asked number of jobs have a final outcome, and pyqueue workers are awaited
through their local events with a deadline, so nothing here sleeps to
synchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis

from pyqueue import AsyncQueue, Job, Queue, QueueEvents, UnrecoverableError, Worker

pytestmark = pytest.mark.interop

DEADLINE = 20.0  # seconds a pyqueue worker gets to reach the expected outcomes

ALL_ZERO_COUNTS = {"active": 0, "completed": 0, "delayed": 0, "failed": 0, "prioritized": 0,
                   "waiting": 0, "waiting-children": 0}


def counts(**nonzero: int) -> dict[str, int]:
    """``get_job_counts()`` as BullMQ returns it, with the given states non-zero."""
    out = dict(ALL_ZERO_COUNTS)
    for key, value in nonzero.items():
        out[key.replace("_", "-")] = value
    return out


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def hash_of(r: redis.Redis, key: str) -> dict[str, str]:
    return {text(k): text(v) for k, v in r.hgetall(key).items()}


def zset_of(r: redis.Redis, key: str) -> list[tuple[str, int]]:
    return [(text(m), int(s)) for m, s in r.zrange(key, 0, -1, withscores=True)]


def events_of(r: redis.Redis, key: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """The events stream as (entry id, [(field, value), ...]) in stream order."""
    out = []
    for entry_id, fields in r.xrange(key):
        out.append((text(entry_id), [(text(k), text(v)) for k, v in fields.items()]))
    return out


class Finals:
    """Collects a pyqueue worker's final outcomes (completed, or failed for good)."""

    def __init__(self, worker: Worker, expected: int) -> None:
        self.expected = expected
        self.outcomes: dict[str, tuple[str, Any]] = {}
        self.done = asyncio.Event()
        worker.on("completed", self._completed)
        worker.on("failed", self._failed)

    def _completed(self, job: Job, result: Any) -> None:
        self._record(job.id, ("completed", result))

    def _failed(self, job: Job, exc: BaseException) -> None:
        if isinstance(exc, UnrecoverableError) or job.attempts_made >= job.attempts:
            self._record(job.id, ("failed", str(exc)))

    def _record(self, job_id: str, outcome: tuple[str, Any]) -> None:
        self.outcomes[job_id] = outcome
        if len(self.outcomes) >= self.expected:
            self.done.set()

    async def wait(self, timeout: float = DEADLINE) -> dict[str, tuple[str, Any]]:
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        except asyncio.TimeoutError:
            pytest.fail(f"pyqueue worker reached {len(self.outcomes)} of {self.expected} final "
                        f"outcomes within {timeout} s: {self.outcomes}")
        return self.outcomes


@contextlib.asynccontextmanager
async def pyqueue_worker(redis_url: str, queue: str, processor: Callable[[Job], Any],
                         expected: int, **options: Any) -> AsyncIterator[tuple[Worker, Finals]]:
    """A started pyqueue ``Worker`` and its outcome collector; closed on exit."""
    worker = Worker(queue, processor, connection=redis_url, autorun=False, **options)
    finals = Finals(worker, expected)
    await worker.start()
    try:
        yield worker, finals
    finally:
        await worker.close()


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = DEADLINE) -> None:
    """Poll a cheap condition (every 20 ms) until it holds, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- 1


async def test_node_producer_pyqueue_worker(bull, redis_url, queue_name):
    """Jobs added by BullMQ are processed by a pyqueue Worker, and both libraries
    then report the same results, attempts, states and counts."""
    specs = [  # prioritized first, so "priority 0 goes first" is not just add order
        {"name": "p5", "data": {"k": "p5"}, "opts": {"priority": 5}},
        {"name": "p1", "data": {"k": "p1"}, "opts": {"priority": 1}},
        {"name": "plain", "data": {"k": "plain", "n": 1}},
        {"name": "retry", "data": {"k": "retry"},
         "opts": {"attempts": 3, "backoff": {"type": "fixed", "delay": 100}}},
        {"name": "fail", "data": {"k": "fail", "fail": "bad thing"}},
        {"name": "delayed", "data": {"k": "delayed"}, "opts": {"delay": 300}},
    ]
    added = bull("add", queue=queue_name, jobs=specs)["ids"]
    ids = {spec["name"]: job_id for spec, job_id in zip(specs, added, strict=True)}

    async with AsyncQueue(queue_name, connection=redis_url) as q:
        assert {n: await q.get_job_state(i) for n, i in ids.items()} == {
            "p5": "prioritized", "p1": "prioritized", "plain": "waiting", "retry": "waiting",
            "fail": "waiting", "delayed": "delayed"}
        assert await q.get_job_counts() == counts(prioritized=2, waiting=3, delayed=1)

    seen: list[tuple[str, int]] = []

    async def process(job: Job) -> Any:
        seen.append((job.name, job.attempts_made))
        if job.name == "retry" and job.attempts_made < 2:
            raise ValueError(f"attempt {job.attempts_made + 1} failed")
        if "fail" in job.data:
            raise RuntimeError(job.data["fail"])
        return {"name": job.name, "echo": job.data}

    async with pyqueue_worker(redis_url, queue_name, process, len(specs),
                              concurrency=1) as (_, finals):
        outcomes = await finals.wait()

    assert outcomes[ids["fail"]] == ("failed", "bad thing")
    assert outcomes[ids["retry"]] == ("completed", {"name": "retry", "echo": {"k": "retry"}})
    # Concurrency 1: priority-0 jobs (FIFO) before priority 1 before priority 5.
    firsts = [name for name, made in seen if made == 0 and name != "delayed"]
    assert firsts == ["plain", "retry", "fail", "p1", "p5"]
    assert [made for name, made in seen if name == "retry"] == [0, 1, 2]

    show = ["plain", "retry", "fail", "delayed"]
    node = bull.many([("job", {"queue": queue_name, "id": ids[n]}) for n in show]
                     + [("state", {"queue": queue_name, "id": ids[n]}) for n in show]
                     + [("counts", {"queue": queue_name})])
    node_jobs = {n: r["job"] for n, r in zip(show, node[:4], strict=True)}
    node_states = {n: r["state"] for n, r in zip(show, node[4:8], strict=True)}
    node_counts = node[8]["counts"]

    async with AsyncQueue(queue_name, connection=redis_url) as q:
        py_jobs = {n: await q.get_job(ids[n]) for n in ids}
        py_states = {n: await q.get_job_state(ids[n]) for n in ids}
        py_counts = await q.get_job_counts()

    assert node_counts == py_counts == counts(completed=5, failed=1)
    assert node_states == {n: py_states[n] for n in show} == {
        "plain": "completed", "retry": "completed", "fail": "failed", "delayed": "completed"}
    assert py_states["p1"] == py_states["p5"] == "completed"

    for name in ("plain", "delayed", "p1", "p5"):
        expected = {"name": name, "echo": specs[[s["name"] for s in specs].index(name)]["data"]}
        assert py_jobs[name].return_value == expected
        assert py_jobs[name].attempts_made == 1
        if name in node_jobs:
            assert node_jobs[name]["returnvalue"] == expected
            assert node_jobs[name]["attemptsMade"] == 1
            assert node_jobs[name]["attemptsStarted"] == 1
            assert node_jobs[name].get("failedReason") is None

    retry = node_jobs["retry"]
    assert retry["returnvalue"] == py_jobs["retry"].return_value
    assert retry["attemptsMade"] == py_jobs["retry"].attempts_made == 3
    assert retry["attemptsStarted"] == py_jobs["retry"].attempts_started == 3
    assert retry["failedReason"] == py_jobs["retry"].failed_reason == "attempt 2 failed"
    assert len(retry["stacktrace"]) == 2  # one entry per failed attempt, as BullMQ writes

    fail = node_jobs["fail"]
    assert fail["failedReason"] == py_jobs["fail"].failed_reason == "bad thing"
    assert fail["attemptsMade"] == py_jobs["fail"].attempts_made == 1
    assert len(fail["stacktrace"]) == 1 and "bad thing" in fail["stacktrace"][0]
    assert fail["finishedOn"] >= fail["processedOn"] >= fail["timestamp"]

    delayed = node_jobs["delayed"]
    assert delayed["processedOn"] - delayed["timestamp"] >= 300
    assert py_jobs["delayed"].processed_on is not None
    assert (py_jobs["delayed"].processed_on - py_jobs["delayed"].timestamp).total_seconds() \
        >= 0.3


async def test_node_job_delay_field_reset_after_promotion(bull, redis_url, queue_name):
    """BullMQ resets a job's ``delay`` field to 0 when it leaves ``delayed``; a
    delayed BullMQ job processed by pyqueue shows the same to Node."""
    (job_id,) = bull("add", queue=queue_name,
                     jobs=[{"name": "d", "data": {}, "opts": {"delay": 200}}])["ids"]

    async def process(job: Job) -> str:
        return "ok"

    async with pyqueue_worker(redis_url, queue_name, process, 1) as (_, finals):
        await finals.wait()
    job = bull("job", queue=queue_name, id=job_id)["job"]
    assert job["returnvalue"] == "ok"
    assert job["delay"] == 0


# --------------------------------------------------------------------------- 2


def test_pyqueue_producer_node_worker(bull, redis_url, queue_name):
    """Jobs added by pyqueue are processed by a BullMQ Worker; pyqueue then sees
    the outcomes BullMQ wrote, and both count the same."""
    with Queue(queue_name, connection=redis_url) as q:
        jobs = {
            "plain": q.add("plain", {"k": "plain"}),
            "custom": q.add("custom", {"k": "custom", "result": {"custom": True}},
                            job_id="my-job-1"),
            "delayed": q.add("delayed", {"k": "delayed"}, delay=0.3),
            "prio": q.add("prio", {"k": "prio"}, priority=3),
            "flaky": q.add("flaky", {"fail": "always broken"}, attempts=3,
                           backoff={"type": "exponential", "delay": 0.05}),
            "fatal": q.add("fatal", {"unrecoverable": "no way"}, attempts=3),
            "lifo": q.add("lifo", {"k": "lifo"}, lifo=True),
        }
        ids = {name: job.id for name, job in jobs.items()}
        assert ids["custom"] == "my-job-1"
        assert q.get_job_counts() == counts(waiting=5, prioritized=1, delayed=1)

        result = bull("work", queue=queue_name, count=len(jobs), timeoutMs=20000)
        assert result["timedOut"] is False
        processed = {p["name"]: p for p in result["processed"]}
        assert set(processed) == set(jobs)
        # lifo is taken first; then the wait list FIFO; prioritized after all of them.
        order = [p["name"] for p in result["processed"]
                 if p["name"] in ("lifo", "plain", "custom", "fatal", "prio")]
        assert order == ["lifo", "plain", "custom", "fatal", "prio"]
        for name, p in processed.items():
            assert p["id"] == ids[name]
            assert p["data"] == q.get_job(ids[name]).data

        py = {name: q.get_job(job_id) for name, job_id in ids.items()}
        for name in ("plain", "delayed", "prio", "lifo"):
            assert py[name].return_value == {"echo": {"k": name}} == processed[name]["result"]
            assert q.get_job_state(ids[name]) == "completed"
            assert py[name].attempts_made == 1
            assert py[name].failed_reason is None
        assert py["custom"].return_value == {"custom": True}
        assert q.get_job_state("my-job-1") == "completed"
        assert py["delayed"].processed_on is not None
        assert (py["delayed"].processed_on - py["delayed"].timestamp).total_seconds() >= 0.3

        assert q.get_job_state(ids["flaky"]) == "failed"
        assert py["flaky"].failed_reason == "always broken" == processed["flaky"]["error"]
        assert py["flaky"].attempts_made == 3 == processed["flaky"]["attemptsMade"]
        assert len(py["flaky"].stacktrace) == 3
        assert q.get_job_state(ids["fatal"]) == "failed"
        assert py["fatal"].failed_reason == "no way"
        assert py["fatal"].attempts_made == 1
        assert py["fatal"].stacktrace[0].startswith("UnrecoverableError: no way")

        py_counts = q.get_job_counts()
    assert py_counts == bull("counts", queue=queue_name)["counts"] == counts(completed=5,
                                                                              failed=2)


# --------------------------------------------------------------------------- 3


async def test_events_written_by_pyqueue_read_by_node(bull, redis_url, queue_name,
                                                      redis_client):
    """Node's QueueEvents reads every event pyqueue's producer and worker wrote."""
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        ok = await q.add("ok", {"k": 1})
        bad = await q.add("bad", {"fail": "kaput"})
        later = await q.add("later", {"k": 2}, delay=60)

    async def process(job: Job) -> Any:
        await job.update_progress({"pct": 50})
        if "fail" in job.data:
            raise RuntimeError(job.data["fail"])
        return {"done": job.id}

    async with pyqueue_worker(redis_url, queue_name, process, 2) as (_, finals):
        await finals.wait()

    stream = events_of(redis_client, f"bull:{queue_name}:events")
    result = bull("events", queue=queue_name, count=len(stream), lastEventId="0",
                  timeoutMs=5000)
    assert result["timedOut"] is False
    events = result["events"]
    assert [e["id"] for e in events] == [entry_id for entry_id, _ in stream]

    def one(name: str, job_id: str) -> dict[str, Any]:
        found = [e for e in events if e["event"] == name and e.get("jobId") == job_id]
        assert len(found) == 1, (name, job_id, events)
        return found[0]

    assert one("added", ok.id)["name"] == "ok"
    assert one("added", bad.id)["name"] == "bad"
    assert one("added", later.id)["name"] == "later"
    one("waiting", ok.id)
    one("waiting", bad.id)
    assert one("delayed", later.id)["delay"] == int(later.fields["timestamp"]) + 60000
    assert one("active", ok.id)["prev"] == "waiting"
    one("active", bad.id)
    assert one("progress", ok.id)["data"] == {"pct": 50}
    assert one("progress", bad.id)["data"] == {"pct": 50}
    completed = one("completed", ok.id)
    assert completed["returnvalue"] == {"done": ok.id}
    assert completed["prev"] == "active"
    failed = one("failed", bad.id)
    assert failed["failedReason"] == "kaput"
    assert failed["prev"] == "active"
    assert [e["event"] for e in events if e.get("jobId") == ok.id] == [
        "added", "waiting", "active", "progress", "completed"]


async def test_events_written_by_bullmq_read_by_pyqueue(bull, redis_url, queue_name,
                                                        redis_client):
    """pyqueue's QueueEvents reads every event BullMQ's producer and worker wrote."""
    ids = (await bull.aio("add", queue=queue_name, jobs=[
        {"name": "ok", "data": {"progress": 7, "result": {"r": 1}}},
        {"name": "bad", "data": {"fail": "nope"}},
    ]))["ids"]
    work = await bull.aio("work", queue=queue_name, count=2, timeoutMs=15000)
    assert work["timedOut"] is False
    ok_id, bad_id = ids

    stream = events_of(redis_client, f"bull:{queue_name}:events")
    got = []
    qe = QueueEvents(queue_name, connection=redis_url, last_event_id="0", block_ms=200)

    async def collect() -> None:
        async with contextlib.aclosing(qe.__aiter__()) as it:
            async for event in it:
                got.append(event)
                if len(got) >= len(stream):
                    return

    try:
        await asyncio.wait_for(collect(), 10)
    finally:
        await qe.close()

    assert [e.id for e in got] == [entry_id for entry_id, _ in stream]
    by_job = [(e.name, e.job_id) for e in got if e.job_id == ok_id]
    assert by_job == [("added", ok_id), ("waiting", ok_id), ("active", ok_id),
                      ("progress", ok_id), ("completed", ok_id)]

    def one(name: str, job_id: str) -> dict[str, Any]:
        found = [e for e in got if e.name == name and e.job_id == job_id]
        assert len(found) == 1, (name, job_id, got)
        return found[0].data

    assert one("added", ok_id) == {"name": "ok"}
    assert one("added", bad_id) == {"name": "bad"}
    assert one("progress", ok_id) == {"data": 7}
    assert one("completed", ok_id) == {"returnvalue": {"r": 1}, "prev": "active"}
    assert one("failed", bad_id) == {"failedReason": "nope", "prev": "active"}
    assert "drained" in [e.name for e in got]


# --------------------------------------------------------------------------- 4

FMT_DATA = {"to": "a@example.com", "n": [1, 2], "nested": {"x": None}}


def test_same_job_same_redis_format(bull, redis_url, queue_name, redis_client):
    """The same jobs added by BullMQ and by pyqueue leave the same keys, job
    hashes, scores, markers and events (timestamps aside)."""
    node_q, py_q = f"{queue_name}n", f"{queue_name}p"
    node_ids = bull("add", queue=node_q, jobs=[
        {"name": "fmt", "data": FMT_DATA,
         "opts": {"jobId": "fmt-1", "attempts": 3,
                  "backoff": {"type": "exponential", "delay": 1000}, "priority": 2,
                  "delay": 5000, "removeOnComplete": {"age": 3600, "count": 5}}},
        {"name": "prio", "data": {"x": 1}, "opts": {"priority": 2}},
        {"name": "plain", "data": {}, "opts": {}},
    ])["ids"]
    with Queue(py_q, connection=redis_url) as q:
        py_ids = [
            q.add("fmt", FMT_DATA, job_id="fmt-1", attempts=3,
                  backoff={"type": "exponential", "delay": 1}, priority=2, delay=5,
                  remove_on_complete={"age": 3600, "count": 5}).id,
            q.add("prio", {"x": 1}, priority=2).id,
            q.add("plain", {}).id,
        ]
    assert node_ids == py_ids == ["fmt-1", "2", "3"]

    r = redis_client
    snapshots = {}
    for side, queue in (("node", node_q), ("py", py_q)):
        prefix = f"bull:{queue}:"
        keys = sorted(text(k)[len(prefix):] for k in r.scan_iter(match=prefix + "*"))
        hashes = {job_id: hash_of(r, prefix + job_id) for job_id in py_ids}
        snapshots[side] = {
            "keys": keys, "hashes": hashes,
            "prioritized": zset_of(r, prefix + "prioritized"),
            "delayed": zset_of(r, prefix + "delayed"),
            "marker": zset_of(r, prefix + "marker"),
            "wait": [text(x) for x in r.lrange(prefix + "wait", 0, -1)],
            "id": text(r.get(prefix + "id")), "pc": text(r.get(prefix + "pc")),
            "events": [fields for _, fields in events_of(r, prefix + "events")],
            "meta": sorted(hash_of(r, prefix + "meta")),
        }
    node, py = snapshots["node"], snapshots["py"]
    assert py["keys"] == node["keys"]
    assert py["meta"] == node["meta"]
    assert py["id"] == node["id"] == "3"
    assert py["pc"] == node["pc"]
    assert py["wait"] == node["wait"] == ["3"]

    for job_id in py_ids:
        n, p = node["hashes"][job_id], py["hashes"][job_id]
        assert sorted(p) == sorted(n), job_id
        for field in n:
            if field == "timestamp":
                continue
            if field in ("opts", "data"):
                assert json.loads(p[field]) == json.loads(n[field]), (job_id, field)
            else:
                assert p[field] == n[field], (job_id, field)
        assert abs(int(p["timestamp"]) - int(n["timestamp"])) < 60_000
    assert json.loads(py["hashes"]["fmt-1"]["opts"]) == {
        "jobId": "fmt-1", "attempts": 3, "backoff": {"type": "exponential", "delay": 1000},
        "priority": 2, "delay": 5000, "removeOnComplete": {"age": 3600, "count": 5}}

    # prioritized: priority * 2**32 + counter; the delayed job is not counted there.
    assert py["prioritized"] == node["prioritized"] == [("2", 2 * 2**32 + 1)]
    for side in (node, py):
        ((member, score),) = side["delayed"]
        timestamp = int(side["hashes"]["fmt-1"]["timestamp"])
        assert member == "fmt-1"
        assert score // 4096 == timestamp + 5000
        assert score % 4096 == 0
        assert dict(side["marker"]) == {"0": 0, "1": timestamp + 5000}

    def shape(events: list[list[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
        return [[(k, "<due>" if k == "delay" else v) for k, v in e] for e in events]

    assert shape(py["events"]) == shape(node["events"])


async def harness_like(job: Job) -> Any:
    """pyqueue twin of the processor in ``bullmq_side.mjs`` (``work``)."""
    data = job.data or {}
    if data.get("progress") is not None:
        await job.update_progress(data["progress"])
    if isinstance(data.get("unrecoverable"), str):
        raise UnrecoverableError(data["unrecoverable"])
    if isinstance(data.get("fail"), str):
        raise RuntimeError(data["fail"])
    return data.get("result", {"echo": data})


# (name, data, BullMQ opts, the same options as pyqueue add() keywords)
LIFECYCLE_JOBS: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("ok", {"progress": 30, "result": {"v": 1}}, {}, {}),
    ("retry", {"fail": "again"}, {"attempts": 2}, {"attempts": 2}),
    ("backoff", {"fail": "later"}, {"attempts": 2, "backoff": {"type": "fixed", "delay": 50}},
     {"attempts": 2, "backoff": {"type": "fixed", "delay": 0.05}}),
    ("fatal", {"unrecoverable": "stop"}, {"attempts": 3}, {"attempts": 3}),
]
# Written at different times by the two runs; compared for presence only.
TIME_FIELDS = {"timestamp", "processedOn", "finishedOn"}


async def test_same_lifecycle_same_events_and_hashes(bull, redis_url, queue_name,
                                                     redis_client):
    """The same jobs run through BullMQ (add + Worker) and through pyqueue (add +
    Worker) leave the same per-job event sequences and the same job hashes."""
    node_q, py_q = f"{queue_name}n", f"{queue_name}p"
    node_ids = (await bull.aio("add", queue=node_q, jobs=[
        {"name": name, "data": data, "opts": opts} for name, data, opts, _ in LIFECYCLE_JOBS
    ]))["ids"]
    work = await bull.aio("work", queue=node_q, count=len(LIFECYCLE_JOBS), timeoutMs=15000)
    assert work["timedOut"] is False

    async with AsyncQueue(py_q, connection=redis_url) as q:
        py_ids = [(await q.add(name, data, **py_opts)).id
                  for name, data, _, py_opts in LIFECYCLE_JOBS]
    assert py_ids == node_ids
    async with pyqueue_worker(redis_url, py_q, harness_like,
                              len(LIFECYCLE_JOBS)) as (_, finals):
        await finals.wait()

    def per_job(queue: str) -> dict[str, list[tuple[str, list[tuple[str, str]]]]]:
        out: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {}
        for _, fields in events_of(redis_client, f"bull:{queue}:events"):
            d = dict(fields)
            if "jobId" in d:
                # Absolute due times differ between the runs; keep the shape.
                out.setdefault(d["jobId"], []).append(
                    (d["event"], [(k, "<due>" if k == "delay" else v) for k, v in fields]))
        return out

    node_events, py_events = per_job(node_q), per_job(py_q)
    assert [name for name, _ in node_events[node_ids[1]]] == [  # the scenario ran
        "added", "waiting", "active", "waiting", "active", "failed", "retries-exhausted"]
    for job_id in node_ids:
        assert py_events[job_id] == node_events[job_id], job_id

    for job_id in node_ids:
        n = hash_of(redis_client, f"bull:{node_q}:{job_id}")
        p = hash_of(redis_client, f"bull:{py_q}:{job_id}")
        assert sorted(p) == sorted(n), job_id
        for field in n:
            if field in TIME_FIELDS:
                continue
            if field in ("opts", "data", "returnvalue", "progress"):
                assert json.loads(p[field]) == json.loads(n[field]), (job_id, field)
            elif field == "stacktrace":  # JS and Python traces differ; their number must not
                assert len(json.loads(p[field])) == len(json.loads(n[field])), job_id
            else:
                assert p[field] == n[field], (job_id, field)


def test_idempotent_adds_across_libraries(bull, redis_url, queue_name, redis_client):
    """A custom job id or a deduplication id taken by one library makes the other
    library's add return the existing job, unchanged, as BullMQ itself does."""
    base = f"bull:{queue_name}:"
    first = bull("add", queue=queue_name, jobs=[
        {"name": "a", "data": {"v": "node"}, "opts": {"jobId": "same-1"}},
        {"name": "d", "data": {"v": "node"}, "opts": {"deduplication": {"id": "dd-1"}}},
    ])["ids"]
    assert first == ["same-1", "2"]
    with Queue(queue_name, connection=redis_url) as q:
        again = q.add("a", {"v": "py"}, job_id="same-1")
        assert (again.id, again.data) == ("same-1", {"v": "node"})
        deduped = q.add("d", {"v": "py"}, deduplication={"id": "dd-1"})
        assert deduped.id == "2"
        own = [q.add("p", {"v": "py"}, job_id="py-1").id,
               q.add("e", {"v": "py"}, deduplication={"id": "dd-2"}).id]
        assert own == ["py-1", "6"]
        second = bull("add", queue=queue_name, jobs=[
            {"name": "p", "data": {"v": "node"}, "opts": {"jobId": "py-1"}},
            {"name": "e", "data": {"v": "node"}, "opts": {"deduplication": {"id": "dd-2"}}},
        ])["ids"]
        assert second == own
        assert q.get_job_counts() == counts(waiting=4)
        assert {i: q.get_job(i).data for i in first + own} == {
            "same-1": {"v": "node"}, "2": {"v": "node"}, "py-1": {"v": "py"}, "6": {"v": "py"}}
    assert text(redis_client.get(base + "id")) == "8"  # every add counts, as in BullMQ
    assert text(redis_client.get(base + "de:dd-1")) == "2"
    assert text(redis_client.get(base + "de:dd-2")) == "6"

    extra = [dict(f) for _, f in events_of(redis_client, base + "events")
             if dict(f)["event"] in ("duplicated", "deduplicated")]
    assert extra == [  # pyqueue's two, then BullMQ's two: the same shapes
        {"event": "duplicated", "jobId": "same-1"},
        {"event": "deduplicated", "jobId": "2", "deduplicationId": "dd-1",
         "deduplicatedJobId": "4"},
        {"event": "duplicated", "jobId": "py-1"},
        {"event": "deduplicated", "jobId": "6", "deduplicationId": "dd-2",
         "deduplicatedJobId": "8"},
    ]


# --------------------------------------------------------------------------- 5


async def test_pause_and_resume_across_libraries(bull, redis_url, queue_name):
    """A pause by either library stops the other's workers; a resume by either
    lets them continue."""
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        first = await q.add("first", {"k": 1})
        await q.pause()
        # BullMQ's worker takes nothing from a queue pyqueue paused.
        idle = await bull.aio("work", queue=queue_name, count=1, timeoutMs=1000)
        assert idle == {"processed": [], "timedOut": True}
        assert await q.get_job_state(first.id) == "waiting"

        assert (await bull.aio("resume", queue=queue_name))["paused"] is False
        assert await q.is_paused() is False
        assert (await bull.aio("pause", queue=queue_name))["paused"] is True
        assert await q.is_paused() is True

        async def process(job: Job) -> str:
            return f"done {job.name}"

        async with pyqueue_worker(redis_url, queue_name, process, 1) as (worker, finals):
            # The pyqueue worker has looked at the paused queue and taken nothing.
            await wait_until(lambda: worker.last_fetch_at is not None, "the first fetch")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(finals.done.wait(), 1.0)
            assert worker.active_count == 0
            assert await q.get_job_state(first.id) == "waiting"

            assert (await bull.aio("resume", queue=queue_name))["paused"] is False
            outcomes = await finals.wait()
        assert outcomes == {first.id: ("completed", "done first")}
        assert await q.get_job_counts() == counts(completed=1)


# --------------------------------------------------------------------------- 6


# Events of a job that was added, taken by a worker that died without writing
# (the hand-made stall writes none), recovered by the stalled check and processed.
STALLED_SEQUENCE = [("added", {}), ("waiting", {}), ("waiting", {"prev": "active"}),
                    ("stalled", {}), ("active", {"prev": "waiting"}),
                    ("completed", {"prev": "active"})]


def job_events(r: redis.Redis, queue: str, job_id: str) -> list[tuple[str, dict[str, str]]]:
    """The job's events as (name, {prev: ...} when present), in stream order."""
    out = []
    for _, fields in events_of(r, f"bull:{queue}:events"):
        d = dict(fields)
        if d.get("jobId") == job_id:
            out.append((d["event"], {"prev": d["prev"]} if "prev" in d else {}))
    return out


def test_bullmq_worker_recovers_job_stalled_by_pyqueue(bull, redis_url, queue_name,
                                                        redis_client):
    """A pyqueue job left active without a lock (its worker died) is moved back
    by BullMQ's stalled check and processed by BullMQ."""
    base = f"bull:{queue_name}:"
    with Queue(queue_name, connection=redis_url) as q:
        job = q.add("stuck", {"result": {"recovered": True}})
        # The dead worker's state: the id in active, no lock, and already
        # marked by a stalled-check pass (BullMQ's default interval is 30 s).
        assert redis_client.lrem(base + "wait", 0, job.id) == 1
        redis_client.lpush(base + "active", job.id)
        redis_client.sadd(base + "stalled", job.id)
        assert q.get_job_state(job.id) == "active"

        result = bull("work", queue=queue_name, count=1, timeoutMs=15000)
        assert result["timedOut"] is False
        assert [(p["id"], p["result"]) for p in result["processed"]] == [
            (job.id, {"recovered": True})]

        done = q.get_job(job.id)
        assert q.get_job_state(job.id) == "completed"
        assert done.return_value == {"recovered": True}
        assert done.stalled_counter == 1
        assert done.attempts_made == 1
    assert job_events(redis_client, queue_name, job.id) == STALLED_SEQUENCE


async def test_pyqueue_worker_recovers_job_stalled_by_bullmq(bull, redis_url, queue_name,
                                                             redis_client):
    """A BullMQ job left active without a lock is moved back by pyqueue's
    stalled check and processed by a pyqueue worker."""
    base = f"bull:{queue_name}:"
    (job_id,) = (await bull.aio("add", queue=queue_name,
                                jobs=[{"name": "stuck", "data": {"k": 1}}]))["ids"]
    assert redis_client.lrem(base + "wait", 0, job_id) == 1
    redis_client.lpush(base + "active", job_id)

    stalled: list[str] = []

    async def process(job: Job) -> Any:
        return {"recovered": job.id}

    async with pyqueue_worker(redis_url, queue_name, process, 1,
                              stalled_interval=0.5) as (worker, finals):
        worker.on("stalled", stalled.append)
        outcomes = await finals.wait()
    assert outcomes == {job_id: ("completed", {"recovered": job_id})}
    assert stalled == [job_id]

    job, state = await bull.amany([("job", {"queue": queue_name, "id": job_id}),
                                   ("state", {"queue": queue_name, "id": job_id})])
    assert state["state"] == "completed"
    assert job["job"]["stalledCounter"] == 1
    assert job["job"]["returnvalue"] == {"recovered": job_id}
    assert job["job"]["attemptsMade"] == 1
    assert job_events(redis_client, queue_name, job_id) == STALLED_SEQUENCE


# --------------------------------------------------------------------------- 7


def test_pyqueue_retention_honoured_by_bullmq_worker(bull, redis_url, queue_name,
                                                     redis_client):
    """remove_on_complete=2 set by pyqueue: BullMQ's worker keeps only 2 completed."""
    with Queue(queue_name, connection=redis_url) as q:
        ids = [job.id for job in q.add_bulk(
            [{"name": f"j{i}", "data": {"i": i}, "opts": {"remove_on_complete": 2}}
             for i in range(4)])]
        result = bull("work", queue=queue_name, count=4, timeoutMs=15000)
        assert result["timedOut"] is False
        assert [p["id"] for p in result["processed"]] == ids

        assert q.get_job_counts() == counts(completed=2)
        assert [job.id for job in q.get_jobs("completed", asc=True)] == ids[2:]
        assert q.get_job(ids[0]) is None and q.get_job(ids[1]) is None
        assert q.get_job(ids[3]).return_value == {"echo": {"i": 3}}
    assert not redis_client.exists(f"bull:{queue_name}:{ids[0]}")


async def test_bullmq_retention_honoured_by_pyqueue_worker(bull, redis_url, queue_name):
    """removeOnComplete: 2 set by BullMQ: pyqueue's worker keeps only 2 completed."""
    ids = (await bull.aio("add", queue=queue_name, jobs=[
        {"name": f"j{i}", "data": {"i": i}, "opts": {"removeOnComplete": 2}}
        for i in range(4)]))["ids"]

    async def process(job: Job) -> Any:
        return job.data["i"]

    async with pyqueue_worker(redis_url, queue_name, process, 4) as (_, finals):
        await finals.wait()

    node_counts, oldest, newest = await bull.amany([
        ("counts", {"queue": queue_name}),
        ("job", {"queue": queue_name, "id": ids[0]}),
        ("job", {"queue": queue_name, "id": ids[3]}),
    ])
    assert node_counts["counts"] == counts(completed=2)
    assert oldest["job"] is None
    assert newest["job"]["returnvalue"] == 3
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        assert [job.id for job in await q.get_jobs("completed", asc=True)] == ids[2:]
        assert await q.get_job(ids[1]) is None


async def _sleep_job(job: Job) -> str:
    await asyncio.sleep(job.data["sleepMs"] / 1000)
    return "ok"


async def test_a_mixed_fleet_on_a_long_active_list_finishes_each_job_once(
        bull, redis_url, queue_name, redis_client):
    """BullMQ workers and pyqueue workers on one queue with hundreds of jobs
    active: pyqueue's batch finishes cut and rebuild an end of `active`
    (LTRIM + push back) while BullMQ's finishes LREM from the tail. Every job
    must be completed exactly once and `active` must end empty."""
    total = 3000
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        await q.add_bulk([{"name": "s", "data": {"sleepMs": 100}} for _ in range(total)])
        trims = int(redis_client.info("commandstats").get("cmdstat_ltrim", {}).get("calls", 0))
        node = asyncio.ensure_future(bull.aio("work", queue=queue_name, count=600,
                                              concurrency=150, timeoutMs=50000))
        # BullMQ first (Node takes a moment to start), then pyqueue beside it.
        deadline = time.monotonic() + 50
        while redis_client.llen(f"bull:{queue_name}:active") < 100:
            assert time.monotonic() < deadline, "the BullMQ worker took no jobs"
            await asyncio.sleep(0.01)
        worker = Worker(queue_name, _sleep_job, connection=redis_url, concurrency=300,
                        autorun=False, log_jobs=False)
        await worker.start()
        try:
            while redis_client.zcard(f"bull:{queue_name}:completed") < total:
                assert time.monotonic() < deadline, "the fleet did not finish in 50 s"
                await asyncio.sleep(0.05)
            result = await node
        finally:
            await worker.close()
    assert result["timedOut"] is False and len(result["processed"]) >= 600
    assert worker.jobs_processed + len(result["processed"]) == total
    assert redis_client.llen(f"bull:{queue_name}:active") == 0
    assert redis_client.zcard(f"bull:{queue_name}:failed") == 0
    pipe = redis_client.pipeline()
    for job_id in range(1, total + 1):
        pipe.hget(f"bull:{queue_name}:{job_id}", "atm")
    assert set(pipe.execute()) == {b"1"}
    # pyqueue's batch cut ran (not only one LREM per job).
    after = int(redis_client.info("commandstats")["cmdstat_ltrim"]["calls"])
    assert after > trims
