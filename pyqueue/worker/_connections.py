"""The worker's connections to Redis (four kinds, each for one purpose) and their reset after a
failover.
"""

from __future__ import annotations

import logging

import redis
import redis.asyncio
import redis.asyncio.cluster

from .. import _ops_worker
from .._cluster import blocking_async_twin, sync_cluster_twin
from .._cluster_fast import SlotTransport
from .._plan import needs_reconnect
from .._resp import PipelinedConnection, options_from
from .._runner import AsyncTransport, async_transport, run_async
from ..connection import (
    SOCKET_TIMEOUT,
    AsyncClient,
    SyncClient,
    blocking_async_client,
    sync_twin,
)
from ..errors import RedisStateError

logger = logging.getLogger("pyqueue.worker")


class Connections:
    """What a running worker holds:

    - ``client``: the redis-py asyncio client it was given (or made from the
      URL): a pool for control commands (``rate_limit``, the eviction check,
      close), job calls that block (``XREAD``), and the per-job commands when
      the pipelined connection is off or not possible;
    - ``fast``: one auto-pipelined connection shared by all slots for the
      per-job commands (fetch, finish, progress, retry);
    - ``blocking``: a client of its own for ``BZPOPMIN`` on the queue's
      marker (a blocked connection cannot carry anything else);
    - ``sync``: a redis-py sync client for the maintenance thread (lock
      renewal, stalled check, cancellations, heartbeat) and for the job calls
      of ``def`` processors in threads.

    On a Redis Cluster (``client`` is a ``redis.asyncio.cluster.RedisCluster``)
    there is no ``fast`` connection; ``blocking`` and ``sync`` are cluster
    clients of their own, which follow slots to their primaries (redis-py
    refreshes the slot map after a failover).
    """

    def __init__(self, client: AsyncClient, owns_client: bool, slot_key: str = "") -> None:
        self.client = client
        self.owns_client = owns_client
        #: A key of the queue: on a cluster, the per-job commands go over
        #: pyqueue's connection to the primary of its slot (``slot``).
        self.slot_key = slot_key
        self.slot: SlotTransport | None = None
        self.blocking: AsyncClient | None = None
        self.fast: PipelinedConnection | None = None
        self.sync: SyncClient | None = None
        self._transport: AsyncTransport | None = None

    def transport(self) -> AsyncTransport:
        """The runner's transport for per-job calls: the pipelined connection
        (or the client's pool when there is none); made once."""
        if self._transport is None:
            self._transport = self.slot or async_transport(self.fast or self.client)
        return self._transport

    def open(self, client_name: str, pipelined: bool) -> SyncClient:
        """Create the worker's own connections (they connect on first use);
        returns the sync client."""
        client = self.client
        if isinstance(client, redis.asyncio.cluster.RedisCluster):
            self.blocking = blocking_async_twin(client)
            self.sync = sync_cluster_twin(client)
            if pipelined and self.slot_key:
                self.slot = SlotTransport(client, self.slot_key, SOCKET_TIMEOUT, client_name)
            self._transport = None
            return self.sync
        self.blocking = blocking_async_client(client, client_name=client_name)
        options = options_from(self.client) if pipelined else None
        if options is not None:
            self.fast = PipelinedConnection(options, timeout=SOCKET_TIMEOUT)
        self._transport = None
        self.sync = sync_twin(client)
        return self.sync

    async def check_eviction_policy(self, name: str, require: bool) -> None:
        """Warn (or refuse with ``RedisStateError`` when ``require``) when Redis may
        evict keys: an evicted job hash or lock is a lost or duplicated job."""
        policy = await run_async(self.client, _ops_worker.eviction_policy())
        if policy is None or policy == "noeviction":
            return
        message = (f"Redis maxmemory-policy is {policy!r}, not 'noeviction': under memory "
                   "pressure Redis may evict job data and locks, losing or repeating jobs")
        if require:
            raise RedisStateError(message)
        logger.warning("worker %s: %s", name, message)

    async def reset_if_failover(self, name: str, exc: BaseException) -> None:
        """After a failover the old primary answers READONLY (or unblocks us with
        UNBLOCKED): drop every connection so the next command reaches the new one."""
        if not needs_reconnect(exc):
            return
        logger.warning("worker %s: Redis is no longer a writable primary; reconnecting", name)
        if self.fast is not None:
            await self.fast.reset()
        # A cluster client follows MOVED and refreshes its slot map itself.
        for client in (self.client, self.blocking):
            if isinstance(client, redis.asyncio.Redis):
                await client.connection_pool.disconnect()
        if isinstance(self.sync, redis.Redis):
            self.sync.connection_pool.disconnect()

    async def close(self) -> None:
        """Close the worker's own connections (and the client if it made it)."""
        if self.blocking is not None:
            await self.blocking.aclose()
        if self.fast is not None:
            await self.fast.aclose()
        if self.slot is not None:
            await self.slot.aclose()
        if self.sync is not None:
            self.sync.close()
        if self.owns_client:
            await self.client.aclose()
