"""A sharded queue's global rate limit and global concurrency (:mod:`pyqueue.sharded`): token
handout from a coordinator in a slot of its own.

The coordinator is the keys of a queue named ``{<name>}`` (one hash tag, so
one slot, apart from every shard's): ``pq:limits`` holds the settings written
by ``set_global_rate_limit`` / ``set_global_concurrency``, ``pq:limits:rate``
the current rate window (a fixed window counter: tokens granted, and the
window's start; it expires with the window) and ``pq:limits:leases`` the
concurrency leases (a sorted set, scored by expiry).

Each shard's worker consults a :class:`ShardLimits` (its fetch gate, see
``pyqueue/worker/_gate.py``). While a limit is set, before a fetch of up to
``k`` jobs it asks the coordinator for ``k`` tokens in one script call
(``lua/shardTokens.lua``): ``min(k, rate tokens left in the window, limit -
live leases)``. Then it fetches at most that many; the tokens it found no job
for are given back (leases dropped; rate tokens refunded if their window is
still the current one). A job's lease is dropped when its slot is done with
it, and extended with its lock; a crashed worker's leases expire after the
lock duration, so capacity never leaks for good. Gives-back are sent with
the next token request, or on their own a millisecond later.

While no limit is set (and the worker has no ``limiter``), no call is made:
the settings are read at the first fetch and again when
:data:`SETTINGS_TTL` seconds have passed since the last read, so a limit set
on a running queue applies within about that long (and jobs already running
then do not count against a concurrency).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _ops
from . import _scripts as S
from ._keys import QueueKeys
from ._plan import Plan, cmd
from ._runner import run_async
from .connection import AsyncClient
from .errors import InvalidJobOptionsError
from .options import Duration, duration_ms
from .worker._gate import FetchGate, Grant

if TYPE_CHECKING:
    from .worker._maintenance import SyncRunner

__all__ = ["SETTINGS_TTL", "ShardLimits", "concurrency_plan", "coordinator_keys",
           "rate_limit_plan"]

logger = logging.getLogger("pyqueue.worker")

#: Seconds a worker trusts a read that found no limit set (no call per fetch meanwhile).
SETTINGS_TTL = 2.0
#: Seconds a lease or token given back waits for a token request to ride along with.
GIVE_BACK_DELAY = 0.001
#: Polling while every lease is live: from the first to the last pause, doubling (s).
POLL_FIRST, POLL_LAST = 0.02, 0.25


def coordinator_keys(prefix: str, name: str) -> QueueKeys:
    """The keys of sharded queue ``name``'s coordinator (the queue ``{<name>}``)."""
    return QueueKeys(prefix, f"{{{name}}}")


def _positive(value: object, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidJobOptionsError(
            f"{option} must be an int >= 1 (None removes the limit), got {value!r}")
    return value


def rate_limit_plan(keys: QueueKeys, max_jobs: int | None, duration: Duration) -> Plan[None]:
    """Set (or, with ``max_jobs=None``, remove) the global rate limit: at most
    ``max_jobs`` jobs started per ``duration`` seconds over all shards. Checked now."""
    if max_jobs is None:
        return _write([cmd("HDEL", keys.shard_limits, "max", "duration")])
    max_jobs = _positive(max_jobs, "max")
    ms = duration_ms(duration, "duration", allow_zero=False)
    if ms < 1:
        raise InvalidJobOptionsError(f"duration must be at least 1 ms, got {duration!r}")
    return _write([cmd("HSET", keys.shard_limits, "max", max_jobs, "duration", ms)])


def concurrency_plan(keys: QueueKeys, n: int | None) -> Plan[None]:
    """Set (or, with ``None``, remove) the global concurrency. Checked now."""
    if n is None:
        return _write([cmd("HDEL", keys.shard_limits, "concurrency")])
    return _write([cmd("HSET", keys.shard_limits, "concurrency",
                       _positive(n, "concurrency"))])


def remove_plan(keys: QueueKeys) -> Plan[None]:
    """Remove the coordinator's keys (settings, rate window, leases)."""
    return _write([cmd("DEL", keys.shard_limits, keys.shard_rate, keys.shard_leases)])


def _write(batch: list[Any]) -> Plan[None]:
    yield batch


class ShardLimits(FetchGate):
    """One shard worker's fetch gate on the coordinator ``keys`` (see the module's
    text). ``limiter`` is the worker's own ``(max, ms)`` (the queue's setting wins),
    ``lease_ms`` the worker's lock duration, ``owner`` a unique id for its leases."""

    def __init__(self, client: AsyncClient, keys: QueueKeys, *, owner: str, lease_ms: int,
                 limiter: tuple[int, int] | None) -> None:
        self._client, self._keys, self._owner = client, keys, owner
        self._lease_ms, self._limiter = lease_ms, limiter
        self._clock = _ops.Clock()
        self._seq = itertools.count(1)
        #: Held jobs' leases: job id -> lease id (read by the maintenance thread).
        self._leases: dict[str, str] = {}
        self._release: list[str] = []
        self._refund: tuple[int, int] = (0, 0)  # (window start, tokens)
        self._limited = limiter is not None
        self._read_at = -math.inf
        self._denied = 0
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Future[None] | None = None

    @property
    def limited(self) -> bool:
        """Whether the last read found a limit (or the worker has a limiter)."""
        return self._limited

    # --- the worker's side (event loop) ------------------------------------------

    async def acquire(self, k: int) -> Grant:
        """Up to ``k`` tokens (no call while no limit is known and the read is fresh)."""
        if not self._limited and time.monotonic() - self._read_at < SETTINGS_TTL:
            return Grant(k)
        await self._settle()
        lease = f"{self._owner}:{next(self._seq)}"
        release, refund = self._take()
        try:
            reply = await run_async(self._client, self._tokens_plan(k, release, refund, lease))
        except BaseException:
            self._put_back(release, refund)
            raise
        granted, wait_ms, flags, window, why = (int(x) for x in reply)
        self._limited, self._read_at = flags != 0, time.monotonic()
        if granted:
            self._denied = 0
            return Grant(granted, 0.0, (lease, bool(flags & 2), window) if flags else None)
        wait = wait_ms / 1000
        if why == 2:  # all leases live: poll, backing off, until one is given back
            wait = min(wait, POLL_FIRST * 2 ** min(self._denied, 8), POLL_LAST)
            self._denied += 1
        return Grant(0, wait)

    def taken(self, job_ids: Sequence[str], grant: Grant) -> None:
        """Bind a lease to each job obtained; give back the tokens not used."""
        if grant.data is None:
            return
        lease, leased, window = grant.data
        used = len(job_ids)
        if leased:
            for i, job_id in enumerate(job_ids, 1):
                self._leases[job_id] = f"{lease}:{i}"
            self._release.extend(f"{lease}:{i}" for i in range(used + 1, grant.n + 1))
        if window and used < grant.n:
            self._add_refund(window, grant.n - used)
        self._schedule()

    def release(self, job_id: str) -> None:
        """Give back ``job_id``'s lease (if it has one)."""
        lease = self._leases.pop(job_id, None)
        if lease is not None:
            self._release.append(lease)
            self._schedule()

    def fetch_next(self) -> bool:
        """Finishes fetch next jobs only while no limit is known (and the read is fresh)."""
        return not self._limited and time.monotonic() - self._read_at < SETTINGS_TTL

    async def close(self) -> None:
        """Send what is still to give back (the worker has closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._settle()
        if self._release or self._refund[1]:
            await self._send()

    # --- the maintenance thread ---------------------------------------------------

    def renew(self, runner: SyncRunner, job_ids: Sequence[str], lock_ms: int) -> None:
        """Extend the leases of the held jobs by the lease duration (``ZADD XX``: a
        lease dropped meanwhile stays dropped)."""
        leases = [lease for lease in map(self._leases.get, job_ids) if lease is not None]
        if leases:
            runner.guarded("global limit lease renewal", self._renew_plan(leases))

    def _renew_plan(self, leases: list[str]) -> Plan[None]:
        yield from self._clock.sync()
        expiry = self._clock.now_ms() + self._lease_ms
        yield [cmd("ZADD", self._keys.shard_leases, "XX",
                   *itertools.chain.from_iterable((expiry, lease) for lease in leases))]

    # --- giving back --------------------------------------------------------------

    def _tokens_plan(self, k: int, release: list[str], refund: tuple[int, int],
                     lease: str) -> Plan[Any]:
        yield from self._clock.sync()
        (reply,) = yield [S.shard_tokens(self._keys, self._clock.now_ms(), k=k, release=release,
                                         window=refund[0], refund=refund[1],
                                         limiter=self._limiter, lease_ms=self._lease_ms,
                                         lease=lease)]
        return reply

    def _add_refund(self, window: int, n: int) -> None:
        current, tokens = self._refund
        # Only the latest window can still be the current one.
        if window > current:
            self._refund = (window, n)
        elif window == current:
            self._refund = (window, tokens + n)

    def _take(self) -> tuple[list[str], tuple[int, int]]:
        release, refund = self._release, self._refund
        self._release, self._refund = [], (0, 0)
        return release, refund

    def _put_back(self, release: list[str], refund: tuple[int, int]) -> None:
        self._release[:0] = release
        if refund[1]:
            self._add_refund(*refund)

    def _schedule(self) -> None:
        if self._timer is None and (self._release or self._refund[1]):
            self._timer = asyncio.get_running_loop().call_later(GIVE_BACK_DELAY, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if not (self._release or self._refund[1]):
            return  # a token request took them along
        if self._sending is None or self._sending.done():
            self._sending = asyncio.ensure_future(self._send())
        else:  # one give-back at a time: again once this one is done
            self._sending.add_done_callback(lambda _: self._schedule())

    async def _settle(self) -> None:
        """Wait for a give-back in flight (a token request must come after it)."""
        if self._sending is not None and not self._sending.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._sending)

    async def _send(self) -> None:
        release, refund = self._take()
        if not release and not refund[1]:
            return
        try:
            await run_async(self._client, self._tokens_plan(0, release, refund, ""))
        except Exception as exc:  # kept for the next call; leases expire meanwhile anyway
            self._put_back(release, refund)
            logger.warning("global limits: giving back %d lease(s) failed: %s",
                           len(release), exc)
