"""The suppression list: addresses the worker skips instead of mailing.

Stored in one Redis hash under the queue's prefix,
``<prefix>:<queue>:pq:suppressed``: lower-cased address -> JSON
``{"reason": str, "at": epoch seconds, "expires": epoch seconds | null}``.
Hard bounces are added by the worker; people add and remove addresses with
this API or ``pyqueue email suppress add|remove|list``. An expired entry
counts as absent (and is deleted when next looked at).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from .._keys import QueueKeys, validate_prefix, validate_queue_name
from .message import bare_address, parse_address

if TYPE_CHECKING:
    from ..connection import AsyncClient

Expiry = float | int | timedelta | datetime | None


def suppression_key(queue_name: str, prefix: str = "bull") -> str:
    """The Redis key of a queue's suppression list."""
    return QueueKeys(validate_prefix(prefix), validate_queue_name(queue_name)).suppressed


def normalize(address: str) -> str:
    """The key used for an address: validated, bare and lower-cased."""
    return bare_address(parse_address(address, "address"))


def _expires_at(expires: Expiry, now: float) -> float | None:
    """``expires``: seconds from now, a timedelta, an aware datetime, or None (never)."""
    if expires is None:
        return None
    if isinstance(expires, datetime):
        return expires.timestamp()
    seconds = expires.total_seconds() if isinstance(expires, timedelta) else float(expires)
    if seconds <= 0:
        raise ValueError(f"expires must be > 0 seconds, got {expires!r}")
    return now + seconds


def _entry(address: str, raw: Any, now: float) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        data = {"reason": str(raw), "at": None, "expires": None}
    expires = data.get("expires")
    if expires is not None and float(expires) <= now:
        return None
    return {"address": address, "reason": data.get("reason", ""), "at": data.get("at"),
            "expires": expires}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Suppressions:
    """The suppression list of a queue, with a synchronous Redis client.

    ``Suppressions("email", connection="redis://...")`` or
    ``Suppressions.of(queue)`` to share a ``Queue``'s client.
    """

    def __init__(self, queue_name: str, *, connection: str | redis.Redis | None = None,
                 prefix: str = "bull") -> None:
        from ..connection import sync_client

        self.key = suppression_key(queue_name, prefix)
        self.client, self._owns = sync_client(connection)

    @classmethod
    def of(cls, queue: Any) -> Suppressions:
        """The suppression list of a ``Queue`` (shares its connection)."""
        return cls(queue.name, connection=queue.client, prefix=queue.prefix)

    def add(self, address: str, reason: str = "manual", *, expires: Expiry = None) -> str:
        """Suppress ``address`` (optionally until ``expires``); returns its key form."""
        addr = normalize(address)
        now = time.time()
        self.client.hset(self.key, addr, json.dumps(
            {"reason": reason, "at": now, "expires": _expires_at(expires, now)}))
        return addr

    def remove(self, address: str) -> bool:
        """Stop suppressing ``address``; ``False`` if it was not listed."""
        return bool(self.client.hdel(self.key, normalize(address)))

    def get(self, address: str) -> dict[str, Any] | None:
        """The entry ``{address, reason, at, expires}``, or ``None``."""
        addr = normalize(address)
        entry = _entry(addr, self.client.hget(self.key, addr), time.time())
        return entry

    def is_suppressed(self, address: str) -> bool:
        """Whether mail to ``address`` is skipped."""
        return self.get(address) is not None

    def list(self) -> list[dict[str, Any]]:
        """Every live entry, sorted by address (expired ones are purged)."""
        now = time.time()
        out, expired = [], []
        for raw_addr, raw in self.client.hgetall(self.key).items():
            addr = _text(raw_addr)
            entry = _entry(addr, raw, now)
            (out.append(entry) if entry else expired.append(addr))
        if expired:
            self.client.hdel(self.key, *expired)
        return sorted(out, key=lambda e: e["address"])

    def close(self) -> None:
        """Release the connection (if this object created it)."""
        if self._owns:
            self.client.close()

    def __enter__(self) -> Suppressions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSuppressions:
    """``Suppressions`` for asyncio programs (used by the worker)."""

    def __init__(self, queue_name: str, *,
                 connection: str | AsyncClient | None = None,
                 prefix: str = "bull") -> None:
        from ..connection import async_client

        self.key = suppression_key(queue_name, prefix)
        self.client, self._owns = async_client(connection)

    async def add(self, address: str, reason: str = "manual", *,
                  expires: Expiry = None) -> str:
        """Suppress ``address`` (optionally until ``expires``)."""
        addr = normalize(address)
        now = time.time()
        await self.client.hset(self.key, addr, json.dumps(
            {"reason": reason, "at": now, "expires": _expires_at(expires, now)}))
        return addr

    async def remove(self, address: str) -> bool:
        """Stop suppressing ``address``."""
        return bool(await self.client.hdel(self.key, normalize(address)))

    async def suppressed(self, addresses: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Of ``addresses`` (bare, lower-cased), those suppressed now, with entries."""
        wanted = list(dict.fromkeys(addresses))
        if not wanted:
            return {}
        raws = await self.client.hmget(self.key, wanted)
        now = time.time()
        out = {}
        for addr, raw in zip(wanted, raws, strict=True):
            entry = _entry(addr, raw, now)
            if entry is not None:
                out[addr] = entry
        return out

    async def close(self) -> None:
        """Release the connection (if this object created it)."""
        if self._owns:
            await self.client.aclose()
