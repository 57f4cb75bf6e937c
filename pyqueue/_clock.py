"""The Redis server's clock as seen from a client, and the queue's registration in ``meta``."""

from __future__ import annotations

import time

from ._plan import Plan, cmd

VERSION = "0.1.0"
CLOCK_RESYNC_SECONDS = 300.0


class Clock:
    """Milliseconds on the Redis server's clock, from a measured offset.

    Scripts take "now" as an argument; using the server's clock means a
    worker whose own clock is skewed cannot start delayed jobs early or
    declare live jobs stalled. ``fixed_ms`` pins the clock (for tests).
    """

    def __init__(self, fixed_ms: int | None = None, meta_key: str | None = None, *,
                 register_first: bool = False) -> None:
        self.meta_key = meta_key
        #: Whether the queue is registered in ``meta`` (version, events cap).
        #: A worker registers at its first sync (``register_first``); a
        #: producer only when it adds jobs or a scheduler, so that commands on
        #: a queue that does not exist (``retry_jobs`` on a typo) create nothing.
        self.register_first = register_first
        self.registered = False
        #: The events stream cap read from meta at each sync, passed to the
        #: scripts that write events (saves them a lookup per call).
        self.max_events: int | None = None
        self.offset_ms = 0.0
        self.synced_at: float | None = None
        self.fixed_ms = fixed_ms

    def now_ms(self) -> int:
        """The current time on the server, in ms."""
        if self.fixed_ms is not None:
            return self.fixed_ms
        return int(time.time() * 1000 + self.offset_ms)

    def fresh(self) -> bool:
        """True when the offset was measured recently (``sync`` would do nothing)."""
        return self.synced_at is not None and \
            time.monotonic() - self.synced_at < CLOCK_RESYNC_SECONDS

    def _registering(self, register: bool) -> bool:
        return self.meta_key is not None and not self.registered and (
            register or (self.register_first and self.synced_at is None))

    def needs_sync(self, register: bool = False) -> bool:
        """Whether ``sync(register)`` would send anything."""
        return not self.fresh() or self._registering(register)

    def sync(self, register: bool = False) -> Plan[None]:
        """Measure the offset to the server clock if it is stale (one TIME call).

        With ``register`` (adds), or at a worker's first sync, it also
        registers the queue in ``meta`` as BullMQ does (``opts.maxLenEvents``,
        ``version``), once.
        """
        registering = self._registering(register)
        if not registering and self.fresh():
            return
        batch = [cmd("TIME")]
        if registering:
            assert self.meta_key is not None
            batch.append(cmd("HSETNX", self.meta_key, "opts.maxLenEvents", 10000))
            batch.append(cmd("HSET", self.meta_key, "version", f"pyqueue:{VERSION}"))
        if self.meta_key is not None:
            batch.append(cmd("HGET", self.meta_key, "opts.maxLenEvents"))
        before = time.time()
        replies = yield batch
        after = time.time()
        if registering:
            self.registered = True
        if self.meta_key is not None and replies[-1] is not None:
            try:
                self.max_events = int(replies[-1])
            except ValueError:
                self.max_events = None
        if self.fixed_ms is not None:
            self.synced_at = time.monotonic()
            return
        reply = replies[0]
        server_ms = int(reply[0]) * 1000 + int(reply[1]) / 1000
        self.offset_ms = server_ms - (before + after) / 2 * 1000
        self.synced_at = time.monotonic()
