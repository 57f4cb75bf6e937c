"""The suppression list: addresses the worker skips instead of mailing.

Stored in one Redis hash under the queue's prefix,
``<prefix>:<queue>:pq:suppressed``: lower-cased address -> JSON
``{"reason": str, "at": epoch seconds, "expires": epoch seconds | null}``.
Hard bounces are added by the worker; people add and remove addresses with
this API or ``pyqueue email suppress add|remove|list``. An expired entry
counts as absent (and is deleted when next looked at).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

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


def address_digest(address: str) -> str:
    """A stable SHA-256 digest of an address (bare, lower-cased) for keys and
    forgotten entries: the plain address is not kept."""
    return hashlib.sha256(("pyqueue-email:" + address.strip().lower()).encode()).hexdigest()


def hashed_field(address: str) -> str:
    """The suppression-list field of a forgotten address: ``sha256:<digest>``."""
    return "sha256:" + address_digest(address)


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
            "expires": expires, "source": data.get("source", "manual")}


def _record(reason: str, source: str, now: float, expires: Expiry) -> str:
    return json.dumps({"reason": reason, "at": now, "expires": _expires_at(expires, now),
                       "source": source})


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SuppressionStore(Protocol):
    """What the worker and the feedback endpoint need from a suppression list
    (:class:`AsyncSuppressions` in Redis, the default, or
    ``pgsuppressions.PostgresSuppressions``)."""

    async def add(self, address: str, reason: str = "manual", *, expires: Expiry = None,
                  source: str = "manual") -> str:
        """Suppress ``address``; returns its key form."""
        ...

    async def suppressed(self, addresses: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Of ``addresses`` (bare, lower-cased), those suppressed, with entries."""
        ...

    async def close(self) -> None:
        """Release connections this store opened."""
        ...


def store_from_env(queue_name: str, *, connection: Any, prefix: str = "bull",
                   environ: Mapping[str, str] | None = None) -> SuppressionStore:
    """PostgreSQL when ``$EMAIL_SUPPRESSIONS_DSN`` is set (table
    ``$EMAIL_SUPPRESSIONS_TABLE``, default ``email_suppressions``), else the
    queue's Redis hash."""
    env = os.environ if environ is None else environ
    if env.get("EMAIL_SUPPRESSIONS_DSN"):
        from .pgsuppressions import PostgresSuppressions

        return PostgresSuppressions(env["EMAIL_SUPPRESSIONS_DSN"],
                                    table=env.get("EMAIL_SUPPRESSIONS_TABLE")
                                    or "email_suppressions")
    return AsyncSuppressions(queue_name, connection=connection, prefix=prefix)


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

    def add(self, address: str, reason: str = "manual", *, expires: Expiry = None,
            source: str = "manual") -> str:
        """Suppress ``address`` (optionally until ``expires``); returns its key form.
        ``source``: who said so (``manual``, ``smtp``, ``ses``, ``resend``...)."""
        addr = normalize(address)
        self.client.hset(self.key, addr, _record(reason, source, time.time(), expires))
        return addr

    def remove(self, address: str) -> bool:
        """Stop suppressing ``address`` (its plain or hashed entry); ``False`` if it
        was not listed."""
        addr = normalize(address)
        return bool(self.client.hdel(self.key, addr, hashed_field(addr)))

    def get(self, address: str) -> dict[str, Any] | None:
        """The entry ``{address, reason, at, expires, source}``, or ``None``. A
        forgotten address is found by its hash (``address`` is then ``sha256:...``)."""
        addr = normalize(address)
        now = time.time()
        plain, hashed = self.client.hmget(self.key, [addr, hashed_field(addr)])
        return _entry(addr, plain, now) or _entry(hashed_field(addr), hashed, now)

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
                  expires: Expiry = None, source: str = "manual") -> str:
        """Suppress ``address`` (optionally until ``expires``)."""
        addr = normalize(address)
        await self.client.hset(self.key, addr, _record(reason, source, time.time(), expires))
        return addr

    async def remove(self, address: str) -> bool:
        """Stop suppressing ``address`` (plain or hashed entry)."""
        addr = normalize(address)
        return bool(await self.client.hdel(self.key, addr, hashed_field(addr)))

    async def suppressed(self, addresses: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Of ``addresses`` (bare, lower-cased), those suppressed now (by their
        plain or hashed entry), with entries."""
        wanted = list(dict.fromkeys(addresses))
        if not wanted:
            return {}
        raws = await self.client.hmget(self.key, wanted + [hashed_field(a) for a in wanted])
        now = time.time()
        out = {}
        for i, addr in enumerate(wanted):
            entry = _entry(addr, raws[i], now) or _entry(addr, raws[len(wanted) + i], now)
            if entry is not None:
                out[addr] = entry
        return out

    async def close(self) -> None:
        """Release the connection (if this object created it)."""
        if self._owns:
            await self.client.aclose()
