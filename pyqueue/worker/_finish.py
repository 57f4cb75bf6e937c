"""The finish batcher: gathers the finishes of many slots into few ``moveToFinished`` calls, each
also fetching as many next jobs.
"""

from __future__ import annotations

import asyncio
import functools
from asyncio import Future
from collections.abc import Callable
from typing import Any

from .. import _ops
from .. import _scripts as S
from .._keys import QueueKeys
from .._plan import Command, Plan
from .._runner import AsyncTransport, drive_async
from ..errors import RedisConnectionError
from ._gate import FetchGate

NextJob = tuple[str, str, dict[str, str]] | None
#: Finishes waiting for their script call: (item sent to moveToFinished,
#: future of (code, next job) for the slot that finished it).
Finishes = list[tuple[S.FinishItem, Future[tuple[int, NextJob]]]]
#: A worker at full concurrency keeps about this many finish calls in flight.
FINISH_CHUNKS = 2


class FinishBatcher:
    """Sends finishes in chunks: a chunk goes out as soon as it holds ``chunk``
    finishes, or when the event-loop turn ends, so a few calls are in flight
    at once and Redis works on one chunk while Python runs the next."""

    def __init__(self, keys: QueueKeys, clock: _ops.Clock, concurrency: int, *,
                 transport: Callable[[], AsyncTransport],
                 fetch_params: Callable[[int], S.FetchArgs],
                 closing: Callable[[], bool],
                 on_fetched: Callable[[list[tuple[str, str, dict[str, str]]]], None],
                 spawn: Callable[[str, str, dict[str, str]], None],
                 metrics_points: int | None = None) -> None:
        self._keys = keys
        self._metrics_points = metrics_points
        self._clock = clock
        self._transport = transport
        self._fetch_params = fetch_params
        self._closing = closing
        self._on_fetched = on_fetched
        self._spawn = spawn
        self.chunk = max(1, -(-concurrency // FINISH_CHUNKS))
        self._pending: Finishes = []
        self._scheduled = False
        #: The worker's fetch gate: a finish fetches next jobs only when it allows.
        self.gate: FetchGate | None = None

    def submit(self, item: S.FinishItem) -> Future[tuple[int, NextJob]]:
        """Queue one finish; the future gets (script code, next job or None)."""
        loop = asyncio.get_running_loop()
        future: Future[tuple[int, NextJob]] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.chunk:
            self.flush()  # Redis starts on this chunk while the rest run
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)
        return future

    def flush(self) -> None:
        """Send what is pending now (not when this loop iteration ends): with
        many slots finishing at once, Redis works on one chunk while Python
        runs the next. The plan is driven by the one runner from the reply's
        done-callback (no task to wake in between); it syncs the clock,
        connects and reloads a flushed script when it has to."""
        self._scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        drive_async(self._transport(), self.plan([item for item, _ in batch]),
                    functools.partial(self._replied, batch), immediate=True)

    def _replied(self, batch: Finishes, result: tuple[list[int], Any] | None,
                 error: BaseException | None) -> None:
        if isinstance(error, asyncio.CancelledError):  # no slot may wait forever
            self._fail(batch, RedisConnectionError("the finish call was cancelled"))
        elif error is not None:
            self._fail(batch, error)
        else:
            assert result is not None
            self._hand_out(batch, result)

    def command(self, items: list[S.FinishItem]) -> tuple[Command, bool]:
        """The moveToFinished call for ``items`` (with a fetch of as many next
        jobs unless closing); the clock must be fresh."""
        fetch = not self._closing() and (self.gate is None or self.gate.fetch_next())
        return S.move_to_finished(self._keys, self._clock.now_ms(), items=items,
                                  fetch=self._fetch_params(len(items)) if fetch else None,
                                  me=self._clock.max_events,
                                  metrics_points=self._metrics_points), fetch

    def plan(self, items: list[S.FinishItem]) -> Plan[tuple[list[int], Any]]:
        """The finish call as a plan (syncs the clock first)."""
        if self._clock.needs_sync():
            yield from self._clock.sync()
        command, fetch = self.command(items)
        (reply,) = yield [command]
        return self._decode(reply, fetch)

    @staticmethod
    def _decode(reply: Any, fetch: bool) -> tuple[list[int], Any]:
        codes = [int(code) for code in reply[0]]
        return codes, (S.decode_fetch(reply[1]) if fetch else None)

    @staticmethod
    def _fail(batch: Finishes, exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    def _hand_out(self, batch: Finishes, result: tuple[list[int], Any]) -> None:
        """Give each finishing slot its outcome and its next job."""
        codes, fetched = result
        jobs = list(fetched[2]) if fetched is not None else []
        if jobs:
            self._on_fetched(jobs)
        for (_, future), code in zip(batch, codes, strict=True):
            nxt = jobs.pop(0) if code == 0 and jobs else None
            if future.done():  # the slot is gone (shutdown): run its job elsewhere
                if nxt is not None:
                    jobs.insert(0, nxt)
                continue
            future.set_result((code, nxt))
        for extra in jobs:
            self._spawn(*extra)
