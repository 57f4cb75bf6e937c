"""pyqueue's own connections on a Redis Cluster: :class:`SlotTransport` (asyncio)
and :class:`SyncSlotTransport` (the sync ``Queue``).

Every key of a queue is in one slot, so a queue's per-job commands all go to
one primary. :class:`SlotTransport` sends them over one
:class:`~pyqueue._resp.PipelinedConnection` to that primary (auto-pipelined,
any number of commands in flight, as on a single server) and leaves the rare
cases to redis-py's cluster client (:class:`~pyqueue._cluster.ClusterAsyncTransport`):

- until the connection is made, and after it failed (the primary died or was
  demoted), batches go through redis-py, which learns the new slot map; the
  next batch builds a new connection to the primary redis-py now knows;
- a ``MOVED`` or ``ASK`` reply (the slot moved: resharding, failover) means
  the command did not run: those commands are sent again through redis-py,
  which follows the redirection, and the connection is rebuilt.

A command that was written and then lost its connection is never sent again
(it may have run): its error reaches the plan, as on a single server.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Any

import redis.asyncio.cluster as acluster
import redis.cluster as scluster
import redis.exceptions as rexc

from ._cluster import ClusterAsyncTransport, ClusterSyncTransport
from ._plan import Batch, Command
from ._resp import PipelinedConnection, SyncConnection
from ._resp_options import Options, options_from_kwargs
from ._runner import PipelinedTransport
from .errors import RedisConnectionError

__all__ = ["SlotTransport", "SyncSlotTransport", "node_options"]

#: Settings of a cluster node that only redis-py's cluster client uses (its
#: connect hook sends READONLY to replicas only; pyqueue talks to primaries).
_CLUSTER_ONLY = ("oss_cluster_maint_notifications_handler", "max_connections",
                 "redis_connect_func")


def node_options(node: Any, client_name: str | None = None) -> Options | None:
    """Options of pyqueue's connection to a redis-py cluster node (asyncio or
    sync), or ``None`` when its settings need redis-py."""
    if hasattr(node, "connection_kwargs"):  # asyncio
        kwargs, cls = dict(node.connection_kwargs), node.connection_class
    else:  # sync: the node's own redis.Redis
        pool = node.redis_connection.connection_pool
        kwargs, cls = dict(pool.connection_kwargs), pool.connection_class
    kwargs = {k: v for k, v in kwargs.items() if k not in _CLUSTER_ONLY}
    kwargs["host"], kwargs["port"] = node.host, node.port
    return options_from_kwargs(kwargs, cls.__name__, client_name)


def _redirected(reply: Any) -> bool:
    return isinstance(reply, rexc.MovedError | rexc.AskError)


def _broken(reply: Any) -> bool:
    return isinstance(reply, RedisConnectionError | rexc.ConnectionError | rexc.TimeoutError
                      | OSError)


class SlotTransport:
    """An ``AsyncTransport`` for one queue (one slot) on a Redis Cluster."""

    __slots__ = ("_closing", "client_name", "cluster", "fallback", "fast", "key", "timeout")

    def __init__(self, cluster: acluster.RedisCluster, key: str, timeout: float,
                 client_name: str | None = None) -> None:
        self.cluster = cluster
        self.key = key
        self.timeout = timeout
        self.client_name = client_name
        self.fallback = ClusterAsyncTransport(cluster)
        self.fast: PipelinedTransport | None = None
        self._closing: list[PipelinedConnection] = []

    def submit(self, batch: Batch, immediate: bool = False) -> asyncio.Future[Any]:
        fast = self.fast
        if fast is None:
            return asyncio.ensure_future(self._through_redis_py(batch))
        inner = fast.submit(batch, immediate)
        out: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        inner.add_done_callback(lambda done: self._check(done, batch, out, fast))
        return out

    def _check(self, done: asyncio.Future[Any], batch: Batch, out: asyncio.Future[Any],
               fast: PipelinedTransport) -> None:
        if out.done():
            return
        if done.cancelled():
            out.cancel()
            return
        error = done.exception()
        if error is not None:
            self._drop(fast)
            out.set_exception(error)
            return
        result = done.result()
        replies = [result] if len(batch) == 1 else result
        if any(_redirected(reply) for reply in replies):
            self._drop(fast)
            again = asyncio.ensure_future(self._resend(batch, replies))
            again.add_done_callback(lambda d: _copy(d, out))
            return
        if any(_broken(reply) for reply in replies):
            self._drop(fast)
        out.set_result(result)

    async def _resend(self, batch: Batch, replies: list[Any]) -> Any:
        """Send the redirected commands through redis-py; the others keep their replies."""
        indices = [i for i, reply in enumerate(replies) if _redirected(reply)]
        again = await self.fallback.run([batch[i] for i in indices])
        merged = list(replies)
        for i, reply in zip(indices, again, strict=True):
            merged[i] = reply
        return merged[0] if len(batch) == 1 else merged

    async def _through_redis_py(self, batch: Batch) -> Any:
        """Run ``batch`` with redis-py's cluster client, then connect to the
        slot's primary as redis-py knows it now."""
        await self._close_dropped()
        result = await self.fallback.execute(batch)
        if self.fast is None:
            self._connect()
        return result

    def _connect(self) -> None:
        find: Any = self.cluster.get_node_from_key  # untyped upstream
        try:
            node = find(self.key)
        except Exception:  # no slot map yet: the next batch tries again
            return
        options = node_options(node, self.client_name)
        if options is not None:
            self.fast = PipelinedTransport(PipelinedConnection(options, timeout=self.timeout))

    def _drop(self, fast: PipelinedTransport) -> None:
        if self.fast is fast:
            self.fast = None
            self._closing.append(fast.connection)  # closed by the next slow batch

    async def _close_dropped(self) -> None:
        while self._closing:
            connection = self._closing.pop()
            with contextlib.suppress(Exception):  # closing a broken connection
                await connection.aclose()

    async def aclose(self) -> None:
        """Close pyqueue's connection (redis-py's client belongs to the caller)."""
        if self.fast is not None:
            self._closing.append(self.fast.connection)
            self.fast = None
        await self._close_dropped()


def _copy(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())


class SyncSlotTransport:
    """:class:`SlotTransport`'s synchronous twin (a ``SyncTransport``), for
    ``Queue``: pyqueue's ``SyncConnection`` to the primary of the queue's slot,
    redis-py's cluster client until it is known and for redirected commands.
    Thread-safe as ``SyncConnection`` is (a ``Queue`` may be shared by threads)."""

    def __init__(self, cluster: scluster.RedisCluster, key: str, timeout: float) -> None:
        self.cluster = cluster
        self.key = key
        self.timeout = timeout
        self.fallback = ClusterSyncTransport(cluster)
        self.fast: SyncConnection | None = None
        self._lock = threading.Lock()

    def execute_batch(self, commands: Sequence[Command]) -> list[Any]:
        fast = self.fast
        if fast is None:
            replies = self.fallback.execute_batch(commands)
            self._connect()
            return replies
        try:
            replies = fast.execute_batch(commands)
        except (RedisConnectionError, rexc.ConnectionError, OSError):
            self._drop(fast)
            raise
        redirected = [i for i, reply in enumerate(replies) if _redirected(reply)]
        if redirected:
            self._drop(fast)
            again = self.fallback.execute_batch([commands[i] for i in redirected])
            replies = list(replies)
            for i, reply in zip(redirected, again, strict=True):
                replies[i] = reply
        elif any(_broken(reply) for reply in replies):
            self._drop(fast)
        return replies

    def _connect(self) -> None:
        find: Any = self.cluster.get_node_from_key  # untyped upstream
        try:
            node = find(self.key)
        except Exception:  # no slot map yet: the next batch tries again
            return
        options = node_options(node)
        with self._lock:
            if self.fast is None and options is not None:
                self.fast = SyncConnection(options, self.timeout)

    def _drop(self, fast: SyncConnection) -> None:
        with self._lock:
            if self.fast is fast:
                self.fast = None
        fast.close()

    def close(self) -> None:
        """Close pyqueue's sockets (redis-py's client belongs to the caller)."""
        with self._lock:
            fast, self.fast = self.fast, None
        if fast is not None:
            fast.close()
