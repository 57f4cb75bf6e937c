"""``QueueEvents``: the queue's global event stream, from any process.

Every state change written by any producer or worker (pyqueue's or
BullMQ's) lands in ``<prefix>:<queue>:events``. ``QueueEvents`` follows it
with ``XREAD BLOCK`` on a connection of its own::

    async with QueueEvents("email") as events:
        async for event in events:
            print(event.name, event.job_id, event.data)

Reading starts at new events (``last_event_id="$"``); pass ``"0"`` to read
the retained history, or the ``id`` of the last event you handled to resume
after a restart without missing or repeating anything.

Failures: the first contact with Redis (``start()``, ``async with``, or the
first iteration) raises :class:`RedisConnectionError` when Redis does not
answer within ``socket_timeout``. After that the reader never dies of a
dropped or hung connection: it logs a rate-limited warning, reconnects with
a bounded exponential backoff and resumes after the last event it handed
out, so no event is skipped or repeated.

Gaps: the stream is capped, so a reader that falls further behind than the
cap loses events. Every read is pipelined behind an ``XINFO STREAM`` (one
round trip, and Redis runs both back to back), which tells whether entries
after the last handled id were trimmed; if so the reader yields a ``gap``
event before the next events and logs a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio

from . import _scripts as S
from ._cluster import blocking_async_twin, check_cluster_queue
from ._event_stream import _STREAM_ID, _describe_client, _entries, _info, _is_after
from ._event_stream import Event as Event
from ._event_stream import parse_entry as parse_entry
from ._keys import QueueKeys, validate_prefix, validate_queue_name
from ._plan import translate
from .connection import AsyncClient, async_client, blocking_async_client, mask_url
from .errors import ConfigurationError, RedisConnectionError

logger = logging.getLogger("pyqueue.events")

#: Entries fetched per read.
BATCH = 100
#: Reconnect backoff: first pause and cap, in seconds (each pause is jittered
#: down to half its value).
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0
#: At most one connection warning per this many seconds.
WARN_INTERVAL = 5.0

#: The name of the event a reader yields when it fell behind the stream's cap.
GAP = "gap"


class QueueEvents:
    """Follows a queue's events stream. Iterate it, or register callbacks with
    :meth:`on` and ``await run()``/``start()``.

    ``block_ms`` is how long one ``XREAD`` waits for new events;
    ``socket_timeout`` (seconds) bounds the other calls and how long past
    ``block_ms`` a read may take before the connection counts as dead and is
    replaced."""

    def __init__(self, name: str, *, connection: str | AsyncClient | None = None,
                 prefix: str = "bull", last_event_id: str = "$",
                 block_ms: int = 5000, socket_timeout: float = 5.0) -> None:
        if isinstance(block_ms, bool) or not isinstance(block_ms, int) or block_ms <= 0:
            raise ConfigurationError(f"block_ms must be a positive int, got {block_ms!r}")
        if isinstance(socket_timeout, bool) or not isinstance(socket_timeout, int | float) \
                or not socket_timeout > 0:
            raise ConfigurationError(
                f"socket_timeout must be a positive number of seconds, got {socket_timeout!r}")
        if not isinstance(last_event_id, str) or not (
                last_event_id == "$" or _STREAM_ID.fullmatch(last_event_id)):
            raise ConfigurationError(
                f"last_event_id must be '$', '0' or a stream id, got {last_event_id!r}")
        self.keys = QueueKeys(validate_prefix(prefix), validate_queue_name(name))
        self.name = name
        self.client, self._owns_client = async_client(connection)
        check_cluster_queue(self.client, self._owns_client, prefix, name)
        self._where = _describe_client(self.client)
        self._reader: AsyncClient | None = None
        self.last_event_id = "0-0" if last_event_id == "0" else last_event_id
        self.block_ms = block_ms
        self.socket_timeout = float(socket_timeout)
        # How many entries were ever added to the stream up to and including
        # ``last_event_id`` (None: not known), to count the events of a gap.
        self._index: int | None = None
        self._started = False
        self._listeners: dict[str, list[Callable[..., Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._closing = asyncio.Event()
        self._pending: set[asyncio.Future[Any]] = set()
        self._warned_at = -1e9

    def on(self, name: str, callback: Callable[[Event], Any]) -> QueueEvents:
        """Call ``callback(event)`` for events named ``name`` (``"*"`` for all)."""
        self._listeners.setdefault(name, []).append(callback)
        return self

    async def __aiter__(self) -> AsyncIterator[Event]:
        await self._resolve_start()
        while not self._closed:
            for event in await self._next_batch():
                # The cursor moves past an event only once it is handed out, so
                # resuming from ``last_event_id`` after a break loses nothing.
                self.last_event_id = event.id
                yield event

    # -- connection

    def _reader_client(self) -> AsyncClient:
        if self._reader is None and not isinstance(self.client, redis.asyncio.Redis):
            self._reader = blocking_async_twin(
                self.client, socket_timeout=self.block_ms / 1000 + self.socket_timeout)
        if self._reader is None:
            assert isinstance(self.client, redis.asyncio.Redis)
            reader = blocking_async_client(self.client)
            # One read timeout serves both: a non-blocking call answers well
            # within it, and XREAD BLOCK returns by ``block_ms`` at the latest.
            # Past it the link is dead and redis-py drops the connection.
            kwargs = reader.connection_pool.connection_kwargs
            kwargs["socket_timeout"] = self.block_ms / 1000 + self.socket_timeout
            if kwargs.get("socket_connect_timeout") is None:
                kwargs["socket_connect_timeout"] = self.socket_timeout
            self._reader = reader
        return self._reader

    async def _drop_connection(self) -> None:
        if isinstance(self._reader, redis.asyncio.Redis):
            with contextlib.suppress(Exception):
                await self._reader.connection_pool.disconnect()
        elif self._reader is not None:  # a cluster client: a new one relearns the slots
            reader, self._reader = self._reader, None
            with contextlib.suppress(Exception):
                await reader.aclose()

    async def _resolve_start(self) -> None:
        """First contact: pin ``"$"`` to the newest event id now (so later events
        are not missed). Raises :class:`RedisConnectionError` when Redis does not
        answer within ``socket_timeout``."""
        if self._started:
            return
        reader = self._reader_client()
        try:
            reply = await asyncio.wait_for(
                reader.xinfo_stream(self.keys.events),
                self.socket_timeout)
        except redis.exceptions.ResponseError as exc:
            if "no such key" not in str(exc):
                raise translate(exc) from exc
            reply = None
        except asyncio.TimeoutError:
            await self._drop_connection()
            raise RedisConnectionError(
                f"QueueEvents {self.name}: no answer from {self._where} within "
                f"{self.socket_timeout}s") from None
        except Exception as exc:
            await self._drop_connection()
            raise translate(exc) from exc
        info = _info(reply)
        if self.last_event_id == "$":
            if info is None:
                self.last_event_id, self._index = "0-0", 0
            else:
                self.last_event_id = S.text(info["last-generated-id"])
                added = info.get("entries-added")
                self._index = int(added) if added is not None else None
        self._started = True

    # -- reading

    async def _next_batch(self) -> list[Event]:
        """The next events, reconnecting (with backoff) for as long as it takes."""
        failures = 0
        while not self._closed:
            try:
                events = await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the reader must never die: report, back off, go on
                if self._closed:
                    break
                failures += 1
                self._warn(failures, exc)
                await self._drop_connection()
                pause = min(BACKOFF_MIN * 2 ** (failures - 1), BACKOFF_MAX)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._closing.wait(),
                                           pause * random.uniform(0.5, 1.0))
                continue
            if failures:
                logger.info("QueueEvents %s: reading %s again after %d failed attempts",
                               self.name, self._where, failures)
            return events
        return []

    def _warn(self, failures: int, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at < WARN_INTERVAL:
            return
        self._warned_at = now
        logger.warning(
            "QueueEvents %s: reading the events stream at %s failed (attempt %d): %s: %s; "
            "reconnecting and resuming after event %s", self.name, self._where, failures,
            type(exc).__name__, _masked(exc), self.last_event_id)

    async def _read(self) -> list[Event]:
        prev = self.last_event_id
        pipe = self._reader_client().pipeline(transaction=False)
        pipe.xinfo_stream(self.keys.events)
        pipe.xread({self.keys.events: prev}, count=BATCH, block=self.block_ms)
        try:
            info_reply, reply = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            raise translate(exc) from exc
        if isinstance(reply, Exception):
            raise translate(reply) from reply
        info = _info(info_reply)
        events = _entries(reply)
        gap = self._gap(prev, info, events)
        self._count(prev, info, events, gap is not None)
        return [gap, *events] if gap is not None else events

    def _gap(self, prev: str, info: dict[str, Any] | None,
             events: list[Event]) -> Event | None:
        """A ``gap`` event when entries after ``prev`` were trimmed unread.

        ``info`` was taken just before the read, with nothing in between: when
        entries were there to read, ``XREAD`` returned at once after it. The
        count is exact when the reader knows the position of ``prev`` in the
        stream (it started at ``"$"`` or ``"0"``, or has caught up once)."""
        if info is None or (prev == "0-0" and self._index != 0):
            return None  # reading "everything retained": nothing to miss
        first = info.get("first-entry")
        first_id = S.text(first[0]) if isinstance(first, list | tuple) and first else None
        missed: int | None = None
        added = info.get("entries-added")  # Redis >= 7
        if added is not None and self._index is not None:
            # Entries ever added, minus those still there, minus those up to ours.
            missed = int(added) - int(info.get("length", 0)) - self._index
        # The oldest entry is past ours: trimmed up to it. Without a count, a
        # trim that ended exactly at our entry is reported too.
        if first_id is None or not _is_after(first_id, prev) \
                or (missed is not None and missed <= 0):
            return None
        approx = missed if missed is not None and missed > 0 else None
        resumed_at = events[0].id if events else first_id
        logger.warning(
            "QueueEvents %s: fell behind the capped events stream: %s events after %s were "
            "trimmed before they were read (resuming at %s); raise the cap "
            "(opts.maxLenEvents, see docs/events.md) or read faster", self.name,
            approx if approx is not None else "some", prev, resumed_at)
        return Event(GAP, None, {"missed_after": prev, "resumed_at": resumed_at,
                                 "approx_missed": approx}, prev)

    def _count(self, prev: str, info: dict[str, Any] | None, events: list[Event],
               gap: bool) -> None:
        """Keep ``_index`` (entries ever added up to the last event read)."""
        info = info or {}
        added = info.get("entries-added")
        if added is not None and events and \
                events[-1].id == S.text(info.get("last-generated-id", b"")):
            self._index = int(added)  # read up to the end: exact
        elif added is not None and events and (gap or (prev == "0-0" and self._index is None)):
            # Read from the oldest retained entry on.
            self._index = int(added) - int(info.get("length", 0)) + len(events)
        elif self._index is not None:
            self._index += len(events)

    # -- callbacks

    def _dispatch(self, event: Event) -> None:
        for callback in self._listeners.get(event.name, []) + self._listeners.get("*", []):
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)
            except Exception:
                logger.exception("QueueEvents %s: listener for %r raised", self.name,
                                 event.name)

    async def run(self) -> None:
        """Dispatch events to the callbacks until ``close()``."""
        async for event in self:
            self._dispatch(event)

    async def start(self) -> None:
        """Run the dispatcher in the background (events from now on, or from
        ``last_event_id``). Raises :class:`RedisConnectionError` if Redis does
        not answer the first call; later failures are retried."""
        if self._task is None:
            await self._resolve_start()
            self._task = asyncio.create_task(self.run())
            self._task.add_done_callback(self._run_ended)

    def _run_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("QueueEvents %s: the dispatcher stopped", self.name,
                         exc_info=task.exception())

    async def close(self) -> None:
        """Stop reading and release connections."""
        self._closed = True
        self._closing.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._reader is not None:
            await self._reader.aclose()
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> QueueEvents:
        await self._resolve_start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _masked(exc: BaseException) -> str:
    """An exception's text with any URL password masked."""
    return mask_url(str(exc))
