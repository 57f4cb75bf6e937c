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
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio

from . import _scripts as S
from ._keys import QueueKeys, validate_prefix, validate_queue_name
from ._ops import decode_json
from ._plan import translate
from .connection import async_client, blocking_async_client
from .errors import RedisConnectionError

logger = logging.getLogger("pyqueue.events")

_JSON_FIELDS = {"returnvalue", "data"}


@dataclass(frozen=True)
class Event:
    """One event: ``name`` (added, waiting, active, progress, completed, failed, ...),
    ``job_id`` (``None`` for queue-wide events), the other fields in ``data``
    (``returnvalue`` and progress ``data`` decoded from JSON), and the stream ``id``."""

    name: str
    job_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""


def parse_entry(entry_id: Any, fields: Any) -> Event:
    """An events-stream entry as an ``Event``."""
    values = S.pairs_to_dict(fields if isinstance(fields, dict) else list(fields))
    name = values.pop("event", "")
    job_id = values.pop("jobId", None)
    data: dict[str, Any] = {}
    for key, value in values.items():
        data[key] = decode_json(value) if key in _JSON_FIELDS else value
    return Event(name, job_id, data, S.text(entry_id))


class QueueEvents:
    """Follows a queue's events stream. Iterate it, or register callbacks with
    :meth:`on` and ``await run()``/``start()``."""

    def __init__(self, name: str, *, connection: str | redis.asyncio.Redis | None = None,
                 prefix: str = "bull", last_event_id: str = "$",
                 block_ms: int = 5000) -> None:
        self.keys = QueueKeys(validate_prefix(prefix), validate_queue_name(name))
        self.name = name
        self.client, self._owns_client = async_client(connection)
        self._reader: redis.asyncio.Redis | None = None
        self.last_event_id = last_event_id
        self.block_ms = block_ms
        self._listeners: dict[str, list[Callable[..., Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._pending: set[asyncio.Future[Any]] = set()

    def on(self, name: str, callback: Callable[[Event], Any]) -> QueueEvents:
        """Call ``callback(event)`` for events named ``name`` (``"*"`` for all)."""
        self._listeners.setdefault(name, []).append(callback)
        return self

    async def __aiter__(self) -> AsyncIterator[Event]:
        while not self._closed:
            for event in await self._read():
                # The cursor moves past an event only once it is handed out, so
                # resuming from ``last_event_id`` after a break loses nothing.
                self.last_event_id = event.id
                yield event

    async def _resolve_start(self) -> None:
        """Pin ``"$"`` to the newest event id now, so later events are not missed."""
        if self._reader is None:
            self._reader = blocking_async_client(self.client)
        if self.last_event_id == "$":
            try:
                head = await self._reader.xrevrange(self.keys.events, count=1)
            except Exception as exc:
                raise translate(exc) from exc
            self.last_event_id = S.text(head[0][0]) if head else "0-0"

    async def _read(self) -> list[Event]:
        await self._resolve_start()
        assert self._reader is not None
        try:
            # No read timeout on this connection (it blocks on purpose); a hung
            # one is cancelled past the block time plus a margin.
            reply = await asyncio.wait_for(
                self._reader.xread({self.keys.events: self.last_event_id}, count=100,
                                   block=self.block_ms),
                self.block_ms / 1000 + 5)
        except asyncio.TimeoutError as exc:
            raise RedisConnectionError("events stream read hung past its block time") from exc
        except Exception as exc:
            raise translate(exc) from exc
        events: list[Event] = []
        streams = reply.items() if isinstance(reply, dict) else (reply or [])
        for item in streams:
            entries = item[1]
            if isinstance(entries, list) and entries and isinstance(entries[0], list) \
                    and len(entries) == 1 and isinstance(entries[0][0], list):
                entries = entries[0]
            events.extend(parse_entry(entry_id, fields) for entry_id, fields in entries)
        return events

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
        ``last_event_id``)."""
        if self._task is None:
            await self._resolve_start()
            self._task = asyncio.create_task(self.run())

    async def close(self) -> None:
        """Stop reading and release connections."""
        self._closed = True
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
