"""The finish batcher: gathers the finishes of many slots into few ``moveToFinished`` calls, each
also fetching as many next jobs.
"""

from __future__ import annotations

import asyncio
import functools
from asyncio import Future
from collections.abc import Callable, Coroutine
from typing import Any

import redis.exceptions as rexc

from .. import _ops
from .. import _scripts as S
from .._keys import QueueKeys
from .._plan import Command, Plan, raise_error_reply, translate
from .._resp import PipelinedConnection
from ..errors import RedisConnectionError

NextJob = tuple[str, str, dict[str, str]] | None
#: Finishes waiting for their script call: (item sent to moveToFinished,
#: future of (code, next job) for the slot that finished it).
Finishes = list[tuple[dict[str, Any], Future[tuple[int, NextJob]]]]
#: A worker at full concurrency keeps about this many finish calls in flight.
FINISH_CHUNKS = 2


class FinishBatcher:
    """Sends finishes in chunks: a chunk goes out as soon as it holds ``chunk``
    finishes, or when the event-loop turn ends, so a few calls are in flight
    at once and Redis works on one chunk while Python runs the next."""

    def __init__(self, keys: QueueKeys, clock: _ops.Clock, concurrency: int, *,
                 fast: Callable[[], PipelinedConnection | None],
                 run: Callable[[Plan[Any]], Coroutine[Any, Any, Any]],
                 fetch_params: Callable[[int], dict[str, Any]],
                 closing: Callable[[], bool],
                 on_fetched: Callable[[list[tuple[str, str, dict[str, str]]]], None],
                 spawn: Callable[[str, str, dict[str, str]], None]) -> None:
        self._keys = keys
        self._clock = clock
        self._fast = fast
        self._run = run
        self._fetch_params = fetch_params
        self._closing = closing
        self._on_fetched = on_fetched
        self._spawn = spawn
        self.chunk = max(1, -(-concurrency // FINISH_CHUNKS))
        self._pending: Finishes = []
        self._scheduled = False
        self._senders: set[asyncio.Future[None]] = set()

    def submit(self, item: dict[str, Any]) -> Future[tuple[int, NextJob]]:
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
        """Send what is pending now (not when this loop iteration ends)."""
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch and not self._send(batch):
            self._send_in_task(batch)

    def _send(self, batch: Finishes) -> bool:
        """The fast path: write the call on the pipelined connection at once and
        hand the reply out from a callback (no task to wake in between). False
        when it cannot be taken (no pipelined connection, stale clock)."""
        fast = self._fast()
        if fast is None or not self._clock.fresh():
            return False
        command, fetch = self.command([item for item, _ in batch])
        sent = fast.send_one(command, immediate=True)
        if sent is None:
            return False
        sent.add_done_callback(functools.partial(self._replied, batch, fetch))
        return True

    def _replied(self, batch: Finishes, fetch: bool, sent: Future[Any]) -> None:
        try:
            reply = raise_error_reply(sent.result())
            if isinstance(reply, rexc.NoScriptError):  # not run: the plan reloads it
                self._send_in_task(batch)
                return
            result = self._decode(reply, fetch)
        except asyncio.CancelledError:  # no slot may wait forever
            self._fail(batch, RedisConnectionError("the finish call was cancelled"))
            return
        except Exception as exc:  # the connection failed, or an error reply
            self._fail(batch, translate(exc) if isinstance(exc, rexc.RedisError) else exc)
            return
        self._hand_out(batch, result)

    def _send_in_task(self, batch: Finishes) -> None:
        """The general path: run the finish plan (clock sync, connecting,
        reloading a flushed script) in a task."""
        task = asyncio.ensure_future(self._send_plan(batch))
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    async def _send_plan(self, batch: Finishes) -> None:
        try:
            result = await self._run(self.plan([item for item, _ in batch]))
        except Exception as exc:
            self._fail(batch, exc)
            return
        self._hand_out(batch, result)

    def command(self, items: list[dict[str, Any]]) -> tuple[Command, bool]:
        """The moveToFinished call for ``items`` (with a fetch of as many next
        jobs unless closing); the clock must be fresh."""
        fetch = not self._closing()
        params: dict[str, Any] = {"items": items}
        if fetch:
            params.update(fetch=True, **self._fetch_params(len(items)))
        params["me"] = self._clock.max_events
        return S.call("moveToFinished", self._keys, self._clock.now_ms(), **params), fetch

    def plan(self, items: list[dict[str, Any]]) -> Plan[tuple[list[int], Any]]:
        """The finish call as a plan (syncs the clock first)."""
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
