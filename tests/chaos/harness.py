"""Fault-injection harness: a ledger outside Redis, worker processes, checkers.

Not a test module. The pieces:

- :class:`Ledger`: an append-only JSON-lines file per process (one line per
  event, flushed per line), kept in a temporary directory, never in the Redis
  under test. Producers write ``add`` (``add()`` returned) and ``add_err``
  (``add()`` raised: the job may or may not exist); workers
  (``worker_app.py``) write ``ready``, ``start``, ``end`` and the worker's
  own events (``completed`` = Redis accepted the finish, ``lock_lost``,
  ``stalled``, ``error``).
- :class:`WorkerProc`: a worker in a subprocess, killed/stopped by signals.
- :class:`Scenario`: one queue under test with its producer, workers and
  the end-of-scenario checks.
- :func:`check_jobs`: lost / unexpected / duplicated jobs from the ledger and
  Redis; :func:`check_states`: each job in exactly one state, no orphan locks,
  no active job without a lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

#: The real wall clock, captured before a worker app may skew ``time.time``.
REAL_TIME = time.time

REPO = Path(__file__).resolve().parents[2]
WORKER_APP = Path(__file__).with_name("worker_app.py")

#: Longest reconnect backoff of the worker's main loop (worker.py: 5.0 s cap).
RECONNECT_BACKOFF = 5.0


# --------------------------------------------------------------------------- ledger


class Ledger:
    """Append-only JSON-lines log of one process; thread-safe, flushed per line."""

    def __init__(self, directory: Path, role: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{role}-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
        self._fh = open(self.path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()
        self.lines = 0

    def write(self, ev: str, **fields: Any) -> None:
        record = {"ev": ev, "t": REAL_TIME(), "pid": os.getpid(), **fields}
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if self._fh.closed:
                return
            self._fh.write(line)
            self._fh.flush()
            self.lines += 1

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def read_ledger(directory: Path) -> list[dict[str, Any]]:
    """Every record of every ledger file, sorted by time (a torn last line of a
    SIGKILLed process is skipped)."""
    records = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    records.sort(key=lambda r: r["t"])
    return records


# --------------------------------------------------------------------------- waiting


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.05, on_timeout: Callable[[], str] | None = None) -> Any:
    """Poll ``condition`` until truthy (returned); AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{extra}")
        time.sleep(interval)


# --------------------------------------------------------------------------- workers


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYQUEUE_REDIS_URL", None)
    env.pop("REDIS_URL", None)
    if extra:
        env.update(extra)
    return env


class WorkerProc:
    """A pyqueue worker in its own process (``worker_app.py``), writing the ledger."""

    def __init__(self, url: str, queue: str, ledger_dir: Path, log_dir: Path,
                 **options: Any) -> None:
        self.queue = queue
        self.options = options
        args = [sys.executable, str(WORKER_APP), queue, url, str(ledger_dir)]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.log_path = log_dir / f"worker-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=subprocess_env(), cwd=str(REPO))
        self.pid = self.proc.pid

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker {self.pid} still running after {timeout}s:\n"
                                 f"{self.log()[-3000:]}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log.close()


# --------------------------------------------------------------------------- checks


@dataclass
class JobReport:
    """What the ledger and Redis say about every job of a scenario."""

    added: set[str]
    ambiguous: set[str]               # add() raised: may or may not exist
    completed: set[str]
    failed: set[str]
    lost: set[str]                    # add() returned, not completed/failed
    unexpected: set[str]              # finished or run, but never added
    duplicates: dict[str, int]        # id -> processor runs that ended ok (> 1)
    unjustified: dict[str, dict[str, Any]]  # duplicates not explained by stc
    double_finish: dict[str, int]     # finishes Redis accepted more than once
    runs: Counter[str] = field(default_factory=Counter)
    fields: dict[str, dict[str, str]] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"added={len(self.added)} ambiguous={len(self.ambiguous)} "
                f"completed={len(self.completed)} failed={len(self.failed)} "
                f"lost={len(self.lost)} unexpected={len(self.unexpected)} "
                f"duplicates={len(self.duplicates)} unjustified={len(self.unjustified)} "
                f"double_finish={len(self.double_finish)}")

    def assert_ok(self, allow_duplicates: bool) -> None:
        detail = (f"{self.summary()}\nlost: {sorted(self.lost)[:20]}\n"
                  f"unexpected: {sorted(self.unexpected)[:20]}\n"
                  f"duplicates: {dict(list(self.duplicates.items())[:20])}\n"
                  f"unjustified: {dict(list(self.unjustified.items())[:10])}\n"
                  f"double_finish: {dict(list(self.double_finish.items())[:10])}")
        assert not self.lost, detail
        assert not self.unexpected, detail
        assert not self.double_finish, detail
        if allow_duplicates:
            assert not self.unjustified, detail
        else:
            assert not self.duplicates, detail


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _zset_members(client: redis.Redis, key: str) -> list[str]:
    return [_text(m) for m in client.zrange(key, 0, -1)]


def check_jobs(client: redis.Redis, base: str, records: list[dict[str, Any]]) -> JobReport:
    """Lost / unexpected / duplicated jobs, from the ledger and the Redis under test."""
    added = {r["id"] for r in records if r["ev"] == "add"}
    ambiguous = {r["id"] for r in records if r["ev"] == "add_err"} - added
    completed = set(_zset_members(client, base + "completed"))
    failed = set(_zset_members(client, base + "failed"))
    lost = added - completed - failed
    started = {r["id"] for r in records if r["ev"] == "start"}
    unexpected = (completed | failed | started) - added - ambiguous
    runs: Counter[str] = Counter(r["id"] for r in records
                                 if r["ev"] == "end" and r.get("outcome") == "ok")
    accepted: Counter[str] = Counter(r["id"] for r in records if r["ev"] == "completed")
    duplicates = {job_id: n for job_id, n in runs.items() if n > 1}
    fields: dict[str, dict[str, str]] = {}
    unjustified = {}
    for job_id in duplicates:
        raw = client.hgetall(base + job_id)
        f = {_text(k): _text(v) for k, v in raw.items() if _text(k) in
             ("stc", "atm", "ats", "finishedOn", "processedOn", "returnvalue")}
        fields[job_id] = f
        if int(f.get("stc", 0)) < duplicates[job_id] - 1:
            unjustified[job_id] = {"runs": duplicates[job_id], **f}
    double_finish = {job_id: n for job_id, n in accepted.items() if n > 1}
    return JobReport(added=added, ambiguous=ambiguous, completed=completed, failed=failed,
                     lost=lost, unexpected=unexpected, duplicates=duplicates,
                     unjustified=unjustified, double_finish=double_finish, runs=runs,
                     fields=fields)


def _scan(client: redis.Redis, pattern: str) -> list[str]:
    return [_text(k) for k in client.scan_iter(match=pattern, count=1000)]


def job_locations(client: redis.Redis, base: str) -> dict[str, list[str]]:
    """job id -> every state structure (with repetitions) that holds it."""
    where: dict[str, list[str]] = defaultdict(list)
    for name in ("wait", "active", "paused"):
        for member in client.lrange(base + name, 0, -1):
            where[_text(member)].append(name)
    for name in ("prioritized", "delayed", "completed", "failed", "waiting-children"):
        for member in _zset_members(client, base + name):
            where[member].append(name)
    for key in [*_scan(client, base + "g:*:wait"), base + "gr:delayed"]:
        if client.type(key) == b"zset":
            label = key[len(base):]
            for member in _zset_members(client, key):
                where[member].append(label)
    return where


def check_states(client: redis.Redis, base: str, ids: Iterable[str],
                 expect_idle: bool = True) -> list[str]:
    """Problems with the keyspace: each job in exactly one state structure,
    no id in a structure without its hash, no lock of a job that is not
    active, no active job without a lock. With ``expect_idle`` (the end of a
    scenario) the active list must also be empty."""
    problems = []
    where = job_locations(client, base)
    for job_id in sorted(set(ids) | set(where)):
        places = where.get(job_id, [])
        exists = client.exists(base + job_id) == 1
        if exists and len(places) != 1:
            problems.append(f"job {job_id} is in {places or 'no state'}")
        if not exists and places:
            problems.append(f"job {job_id} has no hash but is in {places}")
    active = set(client.lrange(base + "active", 0, -1))
    for key in _scan(client, base + "*:lock"):
        job_id = key[len(base):-len(":lock")]
        if job_id.encode() not in active:
            problems.append(f"orphan lock {key} (job {job_id} is in "
                            f"{where.get(job_id, ['no state'])})")
    for member in active:
        job_id = _text(member)
        if client.exists(base + job_id + ":lock") == 0:
            problems.append(f"active job {job_id} has no lock")
    if expect_idle and active:
        problems.append(f"{len(active)} jobs still active at the end")
    return problems


def recovery_times(records: list[dict[str, Any]], since: float,
                   pids: Iterable[int]) -> dict[int, float | None]:
    """For each worker pid, seconds from ``since`` to its first job start after it."""
    out: dict[int, float | None] = {}
    for pid in pids:
        starts = [r["t"] for r in records
                  if r["ev"] == "start" and r["pid"] == pid and r["t"] >= since]
        out[pid] = (min(starts) - since) if starts else None
    return out


def max_rate(times: list[float], window: float = 1.0) -> int:
    """The most ``times`` within any window of ``window`` seconds."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] < t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# --------------------------------------------------------------------------- scenario


class Scenario:
    """One queue under test: a producer in this process, worker processes, checks.

    Job ids are custom (``<tag><n>``) so that an add that raised can still be
    told apart from a job that nobody added.
    """

    def __init__(self, url: str, directory: Path, queue: str = "chaos") -> None:
        from pyqueue import Queue

        self.url = url
        self.queue_name = queue
        self.dir = directory
        self.ledger_dir = directory / "ledger"
        self.log_dir = directory / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(self.ledger_dir, "producer")
        self.queue = Queue(queue, connection=url)
        self.client = redis.Redis.from_url(url, socket_timeout=15)
        self.base = f"bull:{queue}:"
        self.workers: list[WorkerProc] = []
        self.added: list[str] = []
        self._seq = 0
        self._seq_lock = threading.Lock()
        self.add_durations: list[float] = []

    # -- producing
    def _next_ids(self, n: int, tag: str) -> list[str]:
        with self._seq_lock:
            first = self._seq
            self._seq += n
        return [f"{tag}{i}" for i in range(first, first + n)]

    def add(self, n: int = 1, tag: str = "j", data: dict[str, Any] | None = None,
            chunk: int = 200, **opts: Any) -> list[str]:
        """Add ``n`` jobs (bulk, ``chunk`` per round trip); returns the ids whose add
        returned. Errors are recorded (``add_err``) and re-raised."""
        ids = self._next_ids(n, tag)
        done = []
        for lo in range(0, n, chunk):
            part = ids[lo:lo + chunk]
            specs = [{"name": "t", "data": data or {}, "opts": {"job_id": i, **opts}}
                     for i in part]
            begun = time.monotonic()
            try:
                jobs = self.queue.add_bulk(specs)
            except Exception as exc:
                for job_id in part:
                    self.ledger.write("add_err", id=job_id, err=type(exc).__name__)
                raise
            finally:
                self.add_durations.append(time.monotonic() - begun)
            for job in jobs:
                assert job.id in part, (job.id, part)
                self.ledger.write("add", id=job.id)
            self.added.extend(part)
            done.extend(part)
        return done

    def add_one(self, tag: str = "j", data: dict[str, Any] | None = None,
                **opts: Any) -> str:
        """One ``Queue.add`` (errors recorded and re-raised)."""
        (job_id,) = self._next_ids(1, tag)
        begun = time.monotonic()
        try:
            job = self.queue.add("t", data or {}, job_id=job_id, **opts)
        except Exception as exc:
            self.ledger.write("add_err", id=job_id, err=type(exc).__name__)
            raise
        finally:
            self.add_durations.append(time.monotonic() - begun)
        assert job.id == job_id
        self.ledger.write("add", id=job_id)
        self.added.append(job_id)
        return job_id

    def produce_in_background(self, total: int, per_batch: int = 20,
                              pause: float = 0.01, tag: str = "p",
                              data: dict[str, Any] | None = None) -> ProducerThread:
        producer = ProducerThread(self, total, per_batch, pause, tag, data)
        producer.start()
        return producer

    # -- workers
    def start_worker(self, url: str | None = None, **options: Any) -> WorkerProc:
        worker = WorkerProc(url or self.url, self.queue_name, self.ledger_dir, self.log_dir,
                            **options)
        self.workers.append(worker)
        return worker

    def wait_ready(self, workers: Iterable[WorkerProc], timeout: float = 20.0) -> None:
        pending = {w.pid for w in workers}

        def ready() -> bool:
            for w in self.workers:
                if w.pid in pending and not w.alive():
                    raise AssertionError(f"worker {w.pid} exited:\n{w.log()[-3000:]}")
            got = {r["pid"] for r in self.records() if r["ev"] == "ready"}
            return pending <= got
        wait_until(ready, timeout, "workers to be ready", interval=0.02)

    # -- observing
    def records(self) -> list[dict[str, Any]]:
        return read_ledger(self.ledger_dir)

    def finished(self, ids: Iterable[str] | None = None) -> bool:
        """Whether every given (default: every added) job is completed or failed."""
        ids = list(self.added if ids is None else ids)
        if not ids:
            return True
        pipe = self.client.pipeline(transaction=False)
        for lo in range(0, len(ids), 1000):
            pipe.zmscore(self.base + "completed", ids[lo:lo + 1000])
            pipe.zmscore(self.base + "failed", ids[lo:lo + 1000])
        replies = pipe.execute()
        done = 0
        for i in range(0, len(replies), 2):
            done += sum(1 for a, b in zip(replies[i], replies[i + 1], strict=True)
                        if a is not None or b is not None)
        return done == len(ids)

    def counts(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for name in ("wait", "active"):
            pipe.llen(self.base + name)
        for name in ("prioritized", "delayed", "completed", "failed"):
            pipe.zcard(self.base + name)
        values = pipe.execute()
        return dict(zip(("wait", "active", "prioritized", "delayed", "completed", "failed"),
                        values, strict=True))

    def debug(self) -> str:
        lines = [f"counts={self.counts()}"]
        for w in self.workers:
            lines.append(f"--- worker {w.pid} alive={w.alive()} log tail:\n{w.log()[-1500:]}")
        return "\n".join(lines)

    def wait_finished(self, timeout: float, ids: Iterable[str] | None = None) -> float:
        """Wait until all (given) jobs are completed/failed; returns the seconds taken."""
        begun = time.monotonic()
        wait_until(lambda: self.finished(ids), timeout, "all jobs to finish", interval=0.1,
                   on_timeout=self.debug)
        return time.monotonic() - begun

    def wait_started_after(self, since: float, workers: Iterable[WorkerProc],
                           timeout: float, feed: int = 0,
                           data: dict[str, Any] | None = None) -> dict[int, float]:
        """Wait until every worker started a job after ``since`` (REAL_TIME); with
        ``feed``, add that many jobs (tag ``r``) whenever none is waiting, so a
        worker that recovers late still finds work. Returns pid -> seconds."""
        pids = [w.pid for w in workers]

        def done() -> dict[int, float | None] | None:
            times = recovery_times(self.records(), since, pids)
            if all(v is not None for v in times.values()):
                return times
            if feed and self.client.llen(self.base + "wait") == 0:
                self.add(feed, tag="r", data=data)
            return None
        result: dict[int, float] = wait_until(done, timeout, "every worker to take a job",
                                              interval=0.05, on_timeout=self.debug)
        return result

    # -- the end-of-scenario checks
    def check(self, allow_duplicates: bool, expect_idle: bool = True) -> JobReport:
        records = self.records()
        report = check_jobs(self.client, self.base, records)
        report.assert_ok(allow_duplicates)
        ids = report.added | (report.ambiguous & set(job_locations(self.client, self.base)))
        problems = check_states(self.client, self.base, ids, expect_idle=expect_idle)
        assert not problems, "\n".join(problems[:30])
        return report

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.queue.close()
        self.client.close()
        self.ledger.close()


class ProducerThread(threading.Thread):
    """Adds ``total`` jobs in small batches, through faults (errors recorded)."""

    def __init__(self, scenario: Scenario, total: int, per_batch: int, pause: float,
                 tag: str, data: dict[str, Any] | None) -> None:
        super().__init__(daemon=True, name="chaos-producer")
        self.scenario = scenario
        self.total = total
        self.per_batch = per_batch
        self.pause = pause
        self.tag = tag
        self.data = data
        self.errors: list[tuple[float, str]] = []
        self.done = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while self.done < self.total and not self.stop_event.is_set():
            n = min(self.per_batch, self.total - self.done)
            try:
                self.scenario.add(n, tag=self.tag, data=self.data)
            except Exception as exc:  # recorded as add_err; keep producing
                self.errors.append((REAL_TIME(), f"{type(exc).__name__}: {exc}"))
                time.sleep(0.05)
            self.done += n  # ids are never reused, failed or not
            time.sleep(self.pause)

    def join_checked(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the producer thread hangs"


def recovery_bound(lock_duration: float, stalled_interval: float) -> float:
    """DESIGN.md 4: lock_duration + 2 * stalled_interval plus the reconnect backoff."""
    return lock_duration + 2 * stalled_interval + RECONNECT_BACKOFF
