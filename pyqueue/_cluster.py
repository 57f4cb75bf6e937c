"""Redis Cluster: recognising cluster clients, the cluster URL form, the hash-tag
rule, and the transports that run plans through redis-py's cluster clients.

The transports here route through redis-py's ``RedisCluster`` (sync and
asyncio): it finds each command's slot from its keys, follows ``MOVED``/``ASK``
and refreshes the slot map after a failover. Every key of a queue sits in one
slot (the hash-tag rule, :func:`require_hash_tag`), so each batch a plan
yields is one pipeline to one primary. Queues and workers send their per-job
calls over pyqueue's own connection to that primary instead
(:mod:`._cluster_fast`), and fall back to these for the rare cases.

Scripts are called with ``FCALL`` as on a single server. When the library is
missing on the primary that owns the slot (a new or promoted node without it,
``FUNCTION FLUSH``), the redo of :mod:`._plan` sends ``FUNCTION LOAD`` and the
``EVAL`` of the calls: here the ``FUNCTION LOAD`` goes to that same primary
(found from the other commands' keys) and the ``EVAL`` calls go through the
cluster pipeline, so the next ``FCALL`` on that slot finds the library.

A worker's ``execution="process"`` children build a sync cluster client of
their own from :func:`cluster_settings` (the seeds and the auth, TLS and
timeout settings, sent over the pipe to the child, never on its command line).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

import redis.asyncio.cluster as acluster
import redis.cluster as scluster
import redis.exceptions as rexc

from ._keys import QueueKeys
from ._plan import Batch, Command, translate
from .errors import ConfigurationError, RedisConnectionError

__all__ = [
    "CLUSTER_SCHEMES",
    "ClusterAsyncTransport",
    "ClusterSyncTransport",
    "async_cluster_from_url",
    "blocking_async_twin",
    "check_cluster_queue",
    "cluster_settings",
    "has_hash_tag",
    "is_async_cluster",
    "is_cluster",
    "is_sync_cluster",
    "key_slot",
    "require_hash_tag",
    "sync_cluster_from_settings",
    "sync_cluster_from_url",
    "sync_cluster_twin",
]

#: URL schemes that mean "a Redis Cluster, discovered from this node".
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")

#: Settings of a cluster client that a twin (blocking, sync) copies.
_COPIED = ("username", "password", "credential_provider", "ssl", "ssl_ca_certs",
           "ssl_ca_data", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile",
           "ssl_check_hostname", "socket_connect_timeout", "socket_keepalive",
           "health_check_interval", "client_name")


def is_sync_cluster(client: object) -> bool:
    """``client`` is a redis-py ``redis.cluster.RedisCluster``."""
    return isinstance(client, scluster.RedisCluster)


def is_async_cluster(client: object) -> bool:
    """``client`` is a ``redis.asyncio.cluster.RedisCluster``."""
    return isinstance(client, acluster.RedisCluster)


def is_cluster(client: object) -> bool:
    """``client`` is a redis-py cluster client (sync or asyncio)."""
    return is_sync_cluster(client) or is_async_cluster(client)


def is_cluster_url(url: str) -> bool:
    """``url`` uses a cluster scheme (``redis+cluster://``, ``rediss+cluster://``)."""
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def _plain_url(url: str) -> str:
    """The ``redis://``/``rediss://`` URL of the seed node of a cluster URL."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.lower().split('+', 1)[0]}://{rest}"


def sync_cluster_from_url(url: str, options: dict[str, Any]) -> scluster.RedisCluster:
    """A sync cluster client from a cluster URL (pyqueue's client settings).

    redis-py's sync cluster client learns the slot map as it is made, so this
    connects: :class:`RedisConnectionError` when no node answers."""
    try:
        return scluster.RedisCluster.from_url(_plain_url(url), **_cluster_options(options))
    except (rexc.RedisError, rexc.RedisClusterException) as exc:
        from .connection import mask_url

        raise RedisConnectionError(
            f"cannot reach the Redis Cluster at {mask_url(url)}: {mask_url(str(exc))}"
        ) from exc


def async_cluster_from_url(url: str, options: dict[str, Any]) -> acluster.RedisCluster:
    """An asyncio cluster client from a cluster URL (pyqueue's client settings)."""
    return acluster.RedisCluster.from_url(_plain_url(url), **_cluster_options(options))


def _cluster_options(options: dict[str, Any]) -> dict[str, Any]:
    # redis-py's cluster clients retry moved/failed commands themselves.
    return {k: v for k, v in options.items() if k != "retry_on_timeout"}


# --- the hash-tag rule -----------------------------------------------------------

def has_hash_tag(prefix: str, name: str) -> bool:
    """Whether every key ``<prefix>:<name>:...`` hashes by a tag inside
    ``<prefix>:<name>`` (Redis's rule: the text between the first ``{`` and
    the first ``}`` after it, when not empty)."""
    base = QueueKeys(prefix, name).base
    start = base.find("{")
    if start == -1:
        return False
    end = base.find("}", start + 1)
    return end > start + 1


def require_hash_tag(prefix: str, name: str) -> None:
    """Raise :class:`ConfigurationError` unless the queue's keys share one slot."""
    if not has_hash_tag(prefix, name):
        raise ConfigurationError(
            f"queue {name!r} with prefix {prefix!r} on a Redis Cluster: its keys would "
            "spread over many hash slots, and pyqueue's scripts need them in one; put a "
            f"hash tag in the prefix or the name, e.g. prefix='{{{prefix}}}' or "
            f"Queue('{{{name}}}')")


def check_cluster_queue(client: object, owned: bool, prefix: str, name: str) -> None:
    """On a cluster client, :func:`require_hash_tag` (a client pyqueue made
    is closed before the error is raised: its pool holds no connection yet)."""
    if not is_cluster(client):
        return
    if not has_hash_tag(prefix, name):
        if owned and is_sync_cluster(client):
            close: Any = getattr(client, "close", None)
            if close is not None:
                close()
        require_hash_tag(prefix, name)


def key_slot(key: str | bytes) -> int:
    """The cluster hash slot of ``key`` (CRC16 of its hash tag, mod 16384)."""
    from redis.crc import key_slot as _slot

    return int(_slot(key.encode() if isinstance(key, str) else key))


# --- twins -------------------------------------------------------------------------

def _copied(kwargs: dict[str, Any]) -> dict[str, Any]:
    copied = {k: kwargs[k] for k in _COPIED if k in kwargs}
    cls = kwargs.get("connection_class")
    if cls is not None and "SSL" in cls.__name__:  # TLS shows as the connection class
        copied["ssl"] = True
    return copied


def _seeds(client: scluster.RedisCluster | acluster.RedisCluster) -> list[tuple[str, int]]:
    manager: Any = client.nodes_manager  # untyped upstream
    nodes = client.get_nodes() or list(manager.startup_nodes.values())
    return [(node.host, int(node.port)) for node in nodes]


def _sync_from(seeds: Sequence[tuple[str, int]], options: dict[str, Any]) -> scluster.RedisCluster:
    node: Any = scluster.ClusterNode  # untyped upstream
    return scluster.RedisCluster(startup_nodes=[node(host, port) for host, port in seeds],
                                 decode_responses=False, **options)


def sync_cluster_twin(client: acluster.RedisCluster) -> scluster.RedisCluster:
    """A new sync cluster client to the same cluster as the asyncio ``client``
    (the worker's maintenance thread). The caller owns it."""
    return _sync_from(_seeds(client), {**_copied(client.connection_kwargs),
                                       "socket_timeout": client.connection_kwargs.get(
                                           "socket_timeout")})


def cluster_settings(client: acluster.RedisCluster) -> dict[str, Any]:
    """What a process-mode child needs to reach the same cluster as ``client``,
    as JSON: ``seeds`` (``[host, port]`` of the known nodes) and the plain
    settings (username, password, TLS files and checks, timeouts). They hold
    the password: send them over a pipe, never on a command line or to a log.
    A ``credential_provider`` (an object) cannot travel and is left out."""
    wanted = {**_copied(client.connection_kwargs),
              "socket_timeout": client.connection_kwargs.get("socket_timeout")}
    settings: dict[str, Any] = {k: v for k, v in wanted.items() if k != "credential_provider"
                                and isinstance(v, str | int | float | bool | type(None))}
    settings["seeds"] = [[host, port] for host, port in _seeds(client)]
    return settings


def sync_cluster_from_settings(settings: dict[str, Any]) -> scluster.RedisCluster:
    """A sync cluster client from :func:`cluster_settings` (in a process-mode
    child). It connects to learn the slot map: :class:`RedisConnectionError`
    (naming the seeds, never the password) when no seed answers."""
    options = dict(settings)
    seeds = [(str(host), int(port)) for host, port in options.pop("seeds")]
    try:
        return _sync_from(seeds, options)
    except (rexc.RedisError, rexc.RedisClusterException) as exc:
        from .connection import mask_url

        where = ", ".join(f"{host}:{port}" for host, port in seeds)
        raise RedisConnectionError(
            f"cannot reach the Redis Cluster at {where}: {mask_url(str(exc))}") from exc


def blocking_async_twin(client: acluster.RedisCluster,
                        socket_timeout: float | None = None) -> acluster.RedisCluster:
    """A new asyncio cluster client to the same cluster for blocking commands
    (``BZPOPMIN``, ``XREAD BLOCK``): no read timeout unless given."""
    seeds = [acluster.ClusterNode(host, port) for host, port in _seeds(client)]
    return acluster.RedisCluster(startup_nodes=seeds, decode_responses=False,
                                 socket_timeout=socket_timeout,
                                 **_copied(client.connection_kwargs))


# --- transports ----------------------------------------------------------------------

def _is_load(command: Command) -> bool:
    args = command.args
    return command.script is None and len(args) > 1 and args[0] == "FUNCTION" \
        and args[1] == "LOAD"


def _first_key(batch: Sequence[Command]) -> Any:
    """A key of the batch (every key of a batch is in one slot)."""
    for command in batch:
        if command.script is not None and int(command.args[0]) > 0:
            return command.args[1]
        if command.script is None and command.args and command.args[0] in ("EVAL", "EVALSHA") \
                and int(command.args[2]) > 0:
            return command.args[3]
    return None


def _split(batch: Batch) -> tuple[list[int], list[Command]]:
    loads = [i for i, command in enumerate(batch) if _is_load(command)]
    rest = [command for i, command in enumerate(batch) if i not in loads]
    return loads, rest


def _merge(size: int, loads: list[int], load_replies: list[Any],
           replies: list[Any]) -> list[Any]:
    out: list[Any] = []
    it_loads, it_rest = iter(load_replies), iter(replies)
    for i in range(size):
        out.append(next(it_loads) if i in loads else next(it_rest))
    return out


def _load_reply(exc: BaseException | None) -> Any:
    """``FUNCTION LOAD``'s reply: "already exists" (another process was first) is success."""
    if exc is None or "already exists" in str(exc):
        return b"OK"
    return exc


class ClusterSyncTransport:
    """A ``redis.cluster.RedisCluster`` as a ``SyncTransport``."""

    __slots__ = ("client",)

    def __init__(self, client: scluster.RedisCluster) -> None:
        self.client = client

    def execute_batch(self, commands: Sequence[Command]) -> list[Any]:
        try:
            return self._execute(commands)
        except rexc.RedisClusterException as exc:  # not a RedisError: made one here
            raise translate(exc) from exc

    def _execute(self, commands: Sequence[Command]) -> list[Any]:
        loads, rest = _split(commands)
        load_replies = [self._load(commands[i], rest) for i in loads]
        replies = self._run(rest) if rest else []
        return _merge(len(commands), loads, load_replies, replies) if loads else replies

    def _node(self, key: Any) -> Any:
        find: Any = self.client.get_node_from_key  # untyped upstream
        return find(key)

    def _load(self, command: Command, rest: list[Command]) -> Any:
        key = _first_key(rest)
        execute: Any = self.client.execute_command  # untyped upstream
        try:
            if key is None:
                execute(*command.args)
            else:
                execute(*command.args, target_nodes=self._node(key))
        except rexc.ResponseError as exc:
            return _load_reply(exc)
        return _load_reply(None)

    def _run(self, commands: Sequence[Command]) -> list[Any]:
        if len(commands) == 1:
            execute: Any = self.client.execute_command
            try:
                return [execute(*commands[0].words())]
            except rexc.ResponseError as exc:
                return [exc]
        pipeline: Any = self.client.pipeline  # untyped upstream
        pipe: Any = pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command.words())
        replies: list[Any] = pipe.execute(raise_on_error=False)
        return replies


_GATES: weakref.WeakKeyDictionary[Any, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _gate(client: acluster.RedisCluster) -> asyncio.Semaphore:
    gate = _GATES.get(client)
    if gate is None:
        limit = int(client.connection_kwargs.get("max_connections") or 100)
        gate = _GATES[client] = asyncio.Semaphore(max(1, limit))
    return gate


class ClusterAsyncTransport:
    """A ``redis.asyncio.cluster.RedisCluster`` as an ``AsyncTransport`` (a
    task per batch, as for redis-py's single-server client)."""

    __slots__ = ("client",)

    def __init__(self, client: acluster.RedisCluster) -> None:
        self.client = client

    def submit(self, batch: Batch, immediate: bool = False) -> asyncio.Future[Any]:
        return asyncio.ensure_future(self.execute(batch))

    async def execute(self, batch: Batch) -> Any:
        """The batch's replies as :meth:`submit` gives them (one command: its reply)."""
        replies = await self.run(batch)
        return replies[0] if len(batch) == 1 else replies

    async def run(self, batch: Batch) -> list[Any]:
        """The batch's replies, a list, error replies as values. At most the
        client's ``max_connections`` batches are in flight at once (redis-py's
        asyncio cluster client fails a command rather than wait for a free
        connection): the others wait their turn."""
        async with _gate(self.client):
            try:
                return await self._run_batch(batch)
            except rexc.RedisClusterException as exc:  # not a RedisError: made one here
                raise translate(exc) from exc

    async def _run_batch(self, batch: Batch) -> list[Any]:
        loads, rest = _split(batch)
        load_replies = [await self._load(batch[i], rest) for i in loads]
        replies = await self._run(rest) if rest else []
        if loads:
            replies = _merge(len(batch), loads, load_replies, replies)
        return replies

    def _node(self, key: Any) -> Any:
        find: Any = self.client.get_node_from_key  # untyped upstream
        return find(key)

    async def _load(self, command: Command, rest: list[Command]) -> Any:
        key = _first_key(rest)
        execute: Any = self.client.execute_command
        try:
            if key is None:
                await execute(*command.args)
            else:
                await execute(*command.args, target_nodes=self._node(key))
        except rexc.ResponseError as exc:
            return _load_reply(exc)
        return _load_reply(None)

    async def _run(self, commands: Sequence[Command]) -> list[Any]:
        if len(commands) == 1:
            execute: Any = self.client.execute_command
            try:
                return [await execute(*commands[0].words())]
            except rexc.ResponseError as exc:
                return [exc]
        pipeline: Any = self.client.pipeline  # untyped upstream
        pipe: Any = pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command.words())
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies
