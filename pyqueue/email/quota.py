"""A daily sending quota per queue, counted per UTC day in Redis.

``<prefix>:<queue>:pq:quota:<YYYY-MM-DD>`` counts messages handed to the
SMTP server that day (expires after two days). A worker reserves one unit
before sending; over the quota, the job is moved to ``delayed`` until the
next UTC midnight plus a random jitter (so a day's backlog does not all
start in the same second) instead of failing. A send that never reached the
server gives its unit back.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from .._keys import QueueKeys

if TYPE_CHECKING:
    from ..connection import AsyncClient


def utc_day(now: datetime) -> str:
    """``2026-01-31`` for ``now`` (a UTC day)."""
    return now.astimezone(timezone.utc).strftime("%Y-%m-%d")


def next_midnight(now: datetime) -> datetime:
    """The next UTC midnight after ``now``."""
    day = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


class DailyQuota:
    """At most ``limit`` messages per UTC day for one queue."""

    def __init__(self, client: AsyncClient, keys: QueueKeys, limit: int,
                 jitter: float = 600.0) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"daily_quota must be an int >= 1, got {limit!r}")
        self.client = client
        self.keys = keys
        self.limit = limit
        self.jitter = max(jitter, 0.0)

    def key(self, now: datetime) -> str:
        """The counter key of ``now``'s day."""
        return self.keys.quota(utc_day(now))

    async def reserve(self, now: datetime | None = None) -> bool:
        """Take one unit of today's quota; ``False`` (nothing taken) when it is used up."""
        now = now or datetime.now(timezone.utc)
        key = self.key(now)
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 2 * 86400)
        used, _ = await pipe.execute()
        if int(used) > self.limit:
            await self.client.decr(key)
            return False
        return True

    async def release(self, now: datetime | None = None) -> None:
        """Give back a unit (the message never reached the server)."""
        await self.client.decr(self.key(now or datetime.now(timezone.utc)))

    async def used(self, now: datetime | None = None) -> int:
        """Units taken today."""
        value = await self.client.get(self.key(now or datetime.now(timezone.utc)))
        return int(value or 0)

    def resume_at(self, now: datetime | None = None) -> datetime:
        """When a job over quota should run: next UTC midnight plus jitter."""
        now = now or datetime.now(timezone.utc)
        return next_midnight(now) + timedelta(seconds=random.uniform(0, self.jitter))
