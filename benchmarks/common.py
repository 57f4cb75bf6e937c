"""What every Python peer adapter shares: the job, the arguments, the protocol.

An adapter is run as ``python -m benchmarks.peers.<name> <workload> '<json>'``
and prints JSON lines on its standard output:

* ``{"checkpoint": "start"}`` / ``{"checkpoint": "end"}`` just before and just
  after the measured phase. With ``"handshake": true`` in the arguments (the
  orchestrator sets it) the adapter then waits for one line on its standard
  input, so the orchestrator can read Redis' ``INFO cpu`` / ``INFO
  commandstats`` around the measured phase and nothing else.
* ``{"result": {...}}`` once, at the end: ``{"jobs": n, "seconds": s}`` for
  the enqueue and throughput workloads, ``{"latencies_ms": [...]}`` for the
  latency workload, or ``{"unsupported": "why"}``.

Everything else the peer library prints goes to standard error: the
adapter's standard output is moved to a private descriptor before the peer
is imported (see :class:`Channel`).

Workloads (``args`` keys in brackets):

``enqueue_single`` [jobs, deadline]
    add ``jobs`` jobs one at a time, each waiting for its reply.
``enqueue_bulk`` [jobs, batch, deadline]
    add ``jobs`` jobs with the peer's bulk API, ``batch`` jobs per call.
``process`` [jobs, concurrency, deadline]
    pre-load ``jobs`` jobs (not timed), then start one worker with
    ``concurrency`` and time from the first job's start to the ``jobs``-th
    completion.
``latency`` [samples, deadline]
    with the worker started and idle, add one job at a time and record the
    time from just before the add call to the moment the processor starts;
    the next job is added only once the previous one has started and had a
    short pause to finish.

Every loop also stops at ``deadline`` seconds, reporting what it did, so a
slow peer cannot stall the run.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: The job's data: ``{"p": "xxx…"}`` is exactly 200 bytes as compact JSON.
PAYLOAD: dict[str, str] = {"p": "x" * 192}
assert len(json.dumps(PAYLOAD, separators=(",", ":"))) == 200

#: The job name / task name every peer uses.
JOB_NAME = "noop"

WORKLOADS = ("enqueue_single", "enqueue_bulk", "process", "latency")

#: Pause after a latency sample's job started, before the next add: lets the
#: worker finish the job and go back to waiting (a blocking pop or its poll).
LATENCY_PAUSE = (0.005, 0.015)


@dataclass
class Args:
    """The arguments of one workload run."""

    url: str
    queue: str = "bench"
    jobs: int = 1000
    concurrency: int = 1
    batch: int = 1000
    samples: int = 200
    deadline: float = 30.0
    handshake: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str) -> Args:
        data = json.loads(raw)
        known = {k: data.pop(k) for k in list(data) if k in cls.__dataclass_fields__}
        return cls(**known, extra=data)


class Channel:
    """The adapter's line protocol with the orchestrator (see the module doc)."""

    def __init__(self, handshake: bool) -> None:
        self.handshake = handshake
        sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)  # stray prints of the peer library go to stderr

    def send(self, obj: dict[str, Any]) -> None:
        self._out.write(json.dumps(obj) + "\n")
        self._out.flush()

    def checkpoint(self, name: str) -> None:
        """Announce a phase boundary; with the handshake, wait for the ack."""
        self.send({"checkpoint": name})
        if self.handshake:
            line = sys.stdin.readline()
            if not line:
                raise SystemExit("benchmark orchestrator went away")

    async def acheckpoint(self, name: str) -> None:
        """:meth:`checkpoint` without blocking the event loop."""
        await asyncio.to_thread(self.checkpoint, name)

    def result(self, obj: dict[str, Any]) -> None:
        self.send({"result": obj})


class Tracker:
    """Counts finished jobs and notes when the first one started (any thread)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.first_start: float | None = None
        self.end: float | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def started(self) -> None:
        if self.first_start is None:
            self.first_start = time.perf_counter()

    def done(self) -> None:
        with self._lock:
            self.count += 1
            reached = self.count == self.target
        if reached:
            self.end = time.perf_counter()
            for cb in self._callbacks:
                cb()

    def on_target(self, cb: Callable[[], None]) -> None:
        self._callbacks.append(cb)

    def outcome(self, launched: float) -> dict[str, Any]:
        """The ``process`` result: jobs and seconds from first start to the end."""
        end = self.end if self.end is not None else time.perf_counter()
        first = self.first_start if self.first_start is not None else launched
        return {
            "jobs": self.count,
            "seconds": max(end - first, 1e-9),
            "startup_seconds": first - launched,
            "timed_out": self.end is None,
        }


class LatencyProbe:
    """Start times recorded by the processor, for the latency workload."""

    def __init__(self) -> None:
        self.started_at: float | None = None
        self.event: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def arm(self) -> None:
        self.started_at = None
        if self.event is not None:
            self.event.clear()

    def hit(self) -> None:
        """Called by the processor at its first line (any thread)."""
        if self.started_at is None:
            self.started_at = time.perf_counter()
        if self.event is not None and self.loop is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self.loop:
                self.event.set()
            else:
                self.loop.call_soon_threadsafe(self.event.set)


async def latency_loop(
    args: Args, add: Callable[[], Any], probe: LatencyProbe,
) -> dict[str, Any]:
    """Run the latency samples with ``add`` (sync or async) and ``probe``."""
    probe.loop = asyncio.get_running_loop()
    probe.event = asyncio.Event()
    latencies: list[float] = []
    deadline = time.perf_counter() + args.deadline
    missed = 0
    while len(latencies) < args.samples and time.perf_counter() < deadline:
        await asyncio.sleep(random.uniform(*LATENCY_PAUSE))
        probe.arm()
        t0 = time.perf_counter()
        out = add()
        if inspect.isawaitable(out):
            await out
        try:
            await asyncio.wait_for(probe.event.wait(), max(0.1, deadline - time.perf_counter()))
        except asyncio.TimeoutError:
            missed += 1
            break
        assert probe.started_at is not None
        latencies.append((probe.started_at - t0) * 1000.0)
    return {"latencies_ms": latencies, "missed": missed}


def sync_latency_loop(
    args: Args, add: Callable[[], Any], probe_wait: Callable[[float], float | None],
    arm: Callable[[], None],
) -> dict[str, Any]:
    """Latency samples for thread-based peers: ``probe_wait(timeout)`` returns the
    start time recorded by the processor (or None on timeout)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + args.deadline
    missed = 0
    while len(latencies) < args.samples and time.perf_counter() < deadline:
        time.sleep(random.uniform(*LATENCY_PAUSE))
        arm()
        t0 = time.perf_counter()
        add()
        started = probe_wait(max(0.1, deadline - time.perf_counter()))
        if started is None:
            missed += 1
            break
        latencies.append((started - t0) * 1000.0)
    return {"latencies_ms": latencies, "missed": missed}


def timed_loop(args: Args, add_one: Callable[[], Any]) -> dict[str, Any]:
    """Call ``add_one`` ``args.jobs`` times (sync), stopping at the deadline."""
    t0 = time.perf_counter()
    stop = t0 + args.deadline
    done = 0
    for _ in range(args.jobs):
        add_one()
        done += 1
        if not done % 64 and time.perf_counter() > stop:
            break
    return {"jobs": done, "seconds": time.perf_counter() - t0}


async def atimed_loop(args: Args, add_one: Callable[[], Any]) -> dict[str, Any]:
    """Await ``add_one()`` ``args.jobs`` times, stopping at the deadline."""
    t0 = time.perf_counter()
    stop = t0 + args.deadline
    done = 0
    for _ in range(args.jobs):
        await add_one()
        done += 1
        if not done % 64 and time.perf_counter() > stop:
            break
    return {"jobs": done, "seconds": time.perf_counter() - t0}


def batches(total: int, size: int) -> list[int]:
    """Split ``total`` into batch sizes of at most ``size``."""
    size = max(1, size)
    return [min(size, total - i) for i in range(0, total, size)]


def run_adapter(namespace: dict[str, Any], argv: list[str] | None = None) -> None:
    """Entry point of an adapter module: dispatch ``argv`` to its workload function.

    A workload function takes ``(args, channel)`` and returns the result dict
    (it may be a coroutine function). A missing function means the peer has
    no such feature; ``UNSUPPORTED`` in the module may say why.
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in WORKLOADS:
        raise SystemExit(
            f"usage: python -m benchmarks.peers.<name> {{{','.join(WORKLOADS)}}} '<json args>'"
        )
    workload, raw = argv
    args = Args.parse(raw)
    channel = Channel(args.handshake)
    fn = namespace.get(workload)
    if fn is None:
        reasons = namespace.get("UNSUPPORTED", {})
        channel.result({"unsupported": reasons.get(workload, "not supported by this peer")})
        return
    out = fn(args, channel)
    if inspect.isawaitable(out):
        out = asyncio.run(out)
    channel.result(out)
