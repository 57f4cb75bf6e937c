"""The fetch loop: fills free slots with one fetch call, blocks on the queue's marker when idle,
and backs off on any error.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

from .. import _ops
from .. import _scripts as S
from .._keys import QueueKeys
from .._plan import Plan, cmd
from ._connections import Connections
from ._events import HookSet, LocalEvents
from ._gate import FetchGate
from ._jobs import Status
from ._report import Reporter
from ._slots import Slots

#: Seconds past a BZPOPMIN timeout after which its connection counts as hung.
BLOCK_MARGIN = 5.0
#: Longest pause, in seconds, between attempts while Redis keeps failing.
MAX_BACKOFF = 5.0


def next_backoff(previous: float) -> float:
    """The next pause after a failure: doubling from 0.1 s up to :data:`MAX_BACKOFF`."""
    return min(max(previous * 2, 0.1), MAX_BACKOFF)


def idle_plan(keys: QueueKeys, clock: _ops.Clock) -> Plan[bool]:
    """Whether nothing is left for ``burst`` mode: no job active, and none
    that could be taken now (waiting, prioritized, grouped and ready, or
    delayed and due) unless the queue is paused, when none can be."""
    yield from clock.sync()
    due = (clock.now_ms() + 1) * 4096 - 1
    replies = yield [cmd("LLEN", keys.active), cmd("HEXISTS", keys.meta, "paused"),
                     cmd("LLEN", keys.wait), cmd("ZCARD", keys.prioritized),
                     cmd("ZCOUNT", keys.delayed, 0, due),
                     S.group_counts(keys, 0, per_group=False)]
    if int(replies[0]) > 0:
        return False
    if int(replies[1]):
        return True
    return all(int(n) == 0 for n in replies[2:-1]) and int(replies[-1][0]) == 0


class FetchParams:
    """The parameters of a fetch of ``n`` jobs: a new lock token each time (the
    worker id and a sequence number), the lock duration, the worker's limiter."""

    def __init__(self, worker_id: str, lock_ms: int, worker_name: str | None,
                 clock: _ops.Clock, limiter: tuple[int, int] | None) -> None:
        self._id, self._lock_ms, self._name = worker_id, lock_ms, worker_name
        self._clock, self._limiter = clock, limiter
        self._seq = 0

    def __call__(self, n: int) -> S.FetchArgs:
        self._seq += 1
        return S.fetch_args(token=f"{self._id}:{self._seq}", lock_ms=self._lock_ms, n=n,
                            wname=self._name, me=self._clock.max_events, limiter=self._limiter)


class FetchLoop:
    """The worker's main loop (one task): fetch for free slots, spawn them, and
    wait for the marker (``BZPOPMIN``) when nothing is ready. It never dies:
    every error is reported and followed by a bounded, jittered backoff."""

    def __init__(self, *, name: str, keys: QueueKeys, clock: _ops.Clock, slots: Slots,
                 status: Status, connections: Connections, events: LocalEvents,
                 hooks: HookSet, reporter: Reporter,
                 run: Callable[[Plan[Any]], Coroutine[Any, Any, Any]],
                 fetch_params: Callable[[int], S.FetchArgs],
                 closing: Callable[[], bool], drain_delay: float) -> None:
        self._name, self._keys, self._clock, self._slots = name, keys, clock, slots
        self._status, self._connections, self._events = status, connections, events
        self._hooks, self._reporter, self._run = hooks, reporter, run
        self._fetch_params, self._closing, self._drain_delay = fetch_params, closing, drain_delay
        self.burst = False
        #: The fetch gate (None: the queue's own script decides alone).
        self.gate: FetchGate | None = None

    def fetched(self, jobs: list[tuple[str, str, dict[str, str]]]) -> None:
        """Bookkeeping for jobs taken from Redis (by a fetch or with a finish)."""
        self._status.last_fetch_at = time.time()
        self._status.had_jobs = True
        if self._hooks.on_fetch:
            self._hooks.call(self._hooks.on_fetch, [job[0] for job in jobs])

    async def run(self) -> None:
        """Loop until the worker closes (or, in burst mode, the queue is idle)."""
        backoff = 0.0
        while not self._closing():
            try:
                done = await self._step()
                backoff = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must never die: report, back off, go on
                self._status.state = "reconnecting"
                self._reporter.report("fetch failed", exc)
                await self._reset(exc)
                backoff = next_backoff(backoff)
                await self.sleep(backoff * random.uniform(0.5, 1.0))
                continue
            if done:
                return

    async def _step(self) -> bool:
        """One turn: fetch, then spawn or wait. True when burst mode is done."""
        slots = self._slots
        free = slots.free
        if free <= 0:
            slots.wake.clear()
            await slots.wake.wait()
            return False
        gate = self.gate
        if gate is None:
            status, number, jobs = await self._run(self._fetch_plan(free))
        else:
            fetched = await self._gated_fetch(gate, free)
            if fetched is None:
                return False
            status, number, jobs = fetched
        self._status.state = "running"
        self._status.last_fetch_at = time.time()
        self._status.last_ok = time.monotonic()
        if jobs:
            self.fetched(jobs)
            for job_id, token, fields in jobs:
                slots.spawn(job_id, token, fields)
            return False
        if self._status.had_jobs and not slots.tasks:
            self._status.had_jobs = False
            self._events.emit("drained")
        if self.burst and not slots.tasks and await self._run(idle_plan(self._keys, self._clock)):
            return True
        if status == S.FETCH_RATE_LIMITED:
            await self.sleep(number / 1000)
            return False
        timeout = self._drain_delay
        if status == S.FETCH_OK and number > 0:
            timeout = min(timeout, max((number - self._clock.now_ms()) / 1000, 0.0))
        if self.burst:
            timeout = min(timeout, 0.5)  # look again soon: other workers' jobs may end
        if timeout > 0:
            await self._block(timeout)
        return False

    async def _gated_fetch(self, gate: FetchGate, free: int) -> Any:
        """A fetch of at most what the gate grants (None: it granted nothing and the
        wait it asked for is over); the gate gets back what was not used."""
        grant = await gate.acquire(free)
        if grant.n <= 0:  # the gate answered: Redis is there, the worker waits on a limit
            self._status.state = "running"
            self._status.last_ok = time.monotonic()
            await self.sleep(grant.wait)
            return None
        jobs: list[tuple[str, str, dict[str, str]]] = []
        try:
            fetched = await self._run(self._fetch_plan(grant.n))
            jobs = fetched[2]
        finally:
            gate.taken([job[0] for job in jobs], grant)
        return fetched

    def _fetch_plan(self, n: int) -> Plan[Any]:
        yield from self._clock.sync()
        (reply,) = yield [S.move_to_active(self._keys, self._clock.now_ms(),
                                           self._fetch_params(n))]
        return S.decode_fetch(reply)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if a slot ends or the worker closes."""
        self._slots.wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._slots.wake.wait(), timeout=seconds)

    async def _block(self, timeout: float) -> None:
        """Wait for the marker (jobs ready) for at most ``timeout`` seconds."""
        blocking = self._connections.blocking
        assert blocking is not None
        timeout = max(timeout, 0.01)
        try:
            # The blocking connection has no read timeout (the wait is the
            # point), so a hung or blackholed connection is caught here: past
            # the block timeout plus a margin, the command is cancelled, which
            # drops that connection, and the next call reconnects.
            await asyncio.wait_for(blocking.bzpopmin(self._keys.marker, timeout=timeout),
                                   timeout + BLOCK_MARGIN)
            self._status.last_ok = time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any error: report, pause, and fetch again
            self._status.state = "reconnecting"
            self._reporter.report("blocking wait failed", exc)
            await self._reset(exc)
            await self.sleep(0.5)

    async def _reset(self, exc: BaseException) -> None:
        """Drop the connections after a failover; a failure here is only reported."""
        try:
            await self._connections.reset_if_failover(self._name, exc)
        except asyncio.CancelledError:
            raise
        except Exception as reset_exc:
            self._reporter.report("reconnecting failed", reset_exc)
