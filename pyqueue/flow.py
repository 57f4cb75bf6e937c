"""Flows: a parent job that waits for its children (BullMQ's ``FlowProducer``).

::

    from pyqueue import FlowProducer
    with FlowProducer(connection=url) as flows:
        node = flows.add({
            "name": "send-invoice", "queue_name": "email", "data": {"order": 7},
            "children": [{"name": "charge", "queue_name": "payments", "data": {"order": 7},
                          "opts": {"fail_parent_on_failure": True}}],
        })
    node.job          # the parent: "waiting-children" until "charge" completes
    node.children     # [FlowNode(job=<charge>, children=[])]

The whole tree is written by one Lua script (nothing is written when any part
of it is refused); children may live in other queues of the same prefix. The
stored format is BullMQ's, so Node workers process pyqueue flows and the other
way round. See docs/flows.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from . import _ops_flow as F
from ._clock import Clock
from ._cluster import is_cluster, key_slot, require_hash_tag
from ._keys import QueueKeys, validate_prefix, validate_queue_name
from ._plan import Plan, cmd
from ._resp import PipelinedConnection, SyncConnection, options_from
from ._runner import async_transport, run_async, run_sync, sync_transport
from ._scripts import pairs_to_dict, text
from .connection import SOCKET_TIMEOUT, AsyncClient, SyncClient, async_client, sync_client
from .errors import ConfigurationError, InvalidJobOptionsError
from .job import AsyncJob, Binding, Job
from .options import DEFAULT_MAX_PAYLOAD_BYTES

J = TypeVar("J", Job, AsyncJob)
T = TypeVar("T")


@dataclass
class FlowNode(Generic[J]):
    """A job of a flow and the nodes of its children (``.job``, ``.children``)."""

    job: J
    children: list[FlowNode[J]] = field(default_factory=list)


class _FlowCore(Generic[J]):
    """The plans behind ``FlowProducer`` and ``AsyncFlowProducer``."""

    def __init__(self, job_class: type[J], prefix: str, max_payload_bytes: int,
                 queue_defaults: Mapping[str, Mapping[str, Any]] | None) -> None:
        self.job_class: type[J] = job_class
        self.prefix = validate_prefix(prefix)
        self.max_payload_bytes = max_payload_bytes
        self.queue_defaults = {validate_queue_name(k): dict(v)
                               for k, v in (queue_defaults or {}).items()}
        self.clock = Clock()
        self._bindings: dict[str, Binding] = {}
        self.run: Any = None
        self.is_async = job_class is AsyncJob
        #: On a Redis Cluster every queue of a tree must be in one slot.
        self.cluster = False

    def binding(self, queue_name: str) -> Binding:
        found = self._bindings.get(queue_name)
        if found is None:
            keys = QueueKeys(self.prefix, queue_name)
            found = Binding(keys, Clock(meta_key=keys.meta), self.run, is_async=self.is_async)
            self._bindings[queue_name] = found
        return found

    def encode(self, tree: object) -> list[F.FlowSpec]:
        specs = F.encode_tree(tree, self.prefix, self.queue_defaults,
                              max_payload_bytes=self.max_payload_bytes)
        if self.cluster:
            _one_slot([spec.keys for spec in specs])
        return specs

    def add_plan(self, trees: list[list[F.FlowSpec]]) -> Plan[list[FlowNode[J]]]:
        added = yield from F.add_trees(self.clock, trees)
        out = []
        for specs, (status, ids, now) in zip(trees, added, strict=True):
            if status == 0:  # the root's custom id existed: that flow, as stored
                root = specs[0]
                node = yield from self.flow_plan(ids[0], root.keys.name, 10, 1000)
                assert node is not None
                out.append(node)
                continue
            nodes = []
            for i, spec in enumerate(specs):
                fields = F.stored_fields(spec, specs, ids, now)
                job = self.job_class(self.binding(spec.keys.name), ids[i], fields,
                                     data=spec.job.value)
                nodes.append(FlowNode(job))
                if spec.up is not None:
                    nodes[spec.up].children.append(nodes[i])
            out.append(nodes[0])
        return out

    def flow_plan(self, job_id: str, queue_name: str, depth: int,
                  max_children: int) -> Plan[FlowNode[J] | None]:
        """The stored tree under a job, level by level (one round trip per level)."""
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise InvalidJobOptionsError(f"depth must be an int >= 0, got {depth!r}")
        if isinstance(max_children, bool) or not isinstance(max_children, int) \
                or max_children < 1:
            raise InvalidJobOptionsError(f"max_children must be an int >= 1, got "
                                         f"{max_children!r}")
        keys = QueueKeys(self.prefix, validate_queue_name(queue_name))
        (fields,) = yield [cmd("HGETALL", keys.job(str(job_id)))]
        found = pairs_to_dict(fields)
        if not found:
            return None
        root: FlowNode[J] = FlowNode(self.job_class(self.binding(keys.name), str(job_id),
                                                    found))
        level = [(root, keys.job(str(job_id)))]
        for _ in range(depth):
            if not level:
                break
            batch = []
            for _node, key in level:
                batch += [cmd("SMEMBERS", QueueKeys.flow_key(key, "dependencies")),
                          cmd("HKEYS", QueueKeys.flow_key(key, "processed")),
                          cmd("HKEYS", QueueKeys.flow_key(key, "failed")),
                          cmd("ZRANGE", QueueKeys.flow_key(key, "unsuccessful"), 0, -1)]
            replies = yield batch
            wanted: list[tuple[FlowNode[J], str, str, str]] = []
            for i, (node, _key) in enumerate(level):
                child_keys = {text(raw) for reply in replies[4 * i:4 * i + 4] for raw in reply}
                for child in sorted(child_keys)[:max_children]:
                    where = QueueKeys.parse_job_key(self.prefix, child)
                    if where is not None:
                        wanted.append((node, child, where[0], where[1]))
            if not wanted:
                break
            hashes = yield [cmd("HGETALL", key) for _, key, _, _ in wanted]
            level = []
            for (parent_node, key, queue, child_id), raw in zip(wanted, hashes, strict=True):
                child_fields = pairs_to_dict(raw)
                if not child_fields:
                    continue  # removed on completion: its value stays in :processed
                child_node: FlowNode[J] = FlowNode(
                    self.job_class(self.binding(queue), child_id, child_fields))
                parent_node.children.append(child_node)
                level.append((child_node, key))
        return root


def _trees(trees: object) -> list[object]:
    if not isinstance(trees, Sequence) or isinstance(trees, str | bytes | Mapping):
        raise InvalidJobOptionsError(f"add_bulk takes a list of flow trees, got {trees!r}")
    return list(trees)


def _one_slot(all_keys: list[QueueKeys]) -> None:
    """On a cluster: every queue of the tree has a hash tag, all in one slot;
    else :class:`ConfigurationError` (before any write)."""
    for keys in all_keys:
        require_hash_tag(keys.prefix, keys.name)
    if len({key_slot(keys.meta) for keys in all_keys}) > 1:
        names = sorted({keys.name for keys in all_keys})
        raise ConfigurationError(
            f"a flow on a Redis Cluster must keep its queues in one hash slot, and "
            f"{names} are in several: put the hash tag in the prefix "
            "(prefix='{bull}'), or give the queue names the same tag")


class FlowProducer:
    """Adds flows (trees of jobs whose parents wait for their children), with a
    synchronous client. A context manager; ``close()`` releases the connection.

    ``queue_defaults`` maps queue names to default job options for the jobs of
    that queue (like ``Queue(default_job_options=...)``).
    """

    def __init__(self, *, connection: str | SyncClient | None = None, prefix: str = "bull",
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 queue_defaults: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._core: _FlowCore[Job] = _FlowCore(Job, prefix, max_payload_bytes, queue_defaults)
        self.client, self._owns_client = sync_client(connection)
        self._core.cluster = is_cluster(self.client)
        options = options_from(self.client)
        self._fast = SyncConnection(options, SOCKET_TIMEOUT) if options is not None else None
        self._transport = sync_transport(self._fast or self.client)
        self._core.run = self._run

    @property
    def prefix(self) -> str:
        """The key prefix (``bull`` by default)."""
        return self._core.prefix

    def _run(self, plan: Plan[T]) -> T:
        return run_sync(self._transport, plan)

    def add(self, tree: Mapping[str, Any]) -> FlowNode[Job]:
        """Add one flow atomically; returns its root node (``.job``, ``.children``).

        When the root has a ``job_id`` that exists already, nothing is added and
        the stored flow is returned (idempotent, like ``Queue.add``).
        """
        specs = self._core.encode(tree)
        return self._run(self._core.add_plan([specs]))[0]

    def add_bulk(self, trees: Sequence[Mapping[str, Any]]) -> list[FlowNode[Job]]:
        """Add several flows in one round trip (each one atomically)."""
        encoded = [self._core.encode(tree) for tree in _trees(trees)]
        return self._run(self._core.add_plan(encoded)) if encoded else []

    def get_flow(self, job_id: str, queue_name: str, depth: int = 10,
                 max_children: int = 1000) -> FlowNode[Job] | None:
        """The stored tree under job ``job_id`` of ``queue_name`` (``None``: no such job):
        children up to ``depth`` levels down, at most ``max_children`` per parent."""
        return self._run(self._core.flow_plan(job_id, queue_name, depth, max_children))

    def close(self) -> None:
        """Close the connection (the client too, when this producer created it)."""
        if self._fast is not None:
            self._fast.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> FlowProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncFlowProducer:
    """``FlowProducer`` for asyncio programs: the same methods, as coroutines."""

    def __init__(self, *, connection: str | AsyncClient | None = None,
                 prefix: str = "bull", max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 queue_defaults: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._core: _FlowCore[AsyncJob] = _FlowCore(AsyncJob, prefix, max_payload_bytes,
                                                    queue_defaults)
        self.client, self._owns_client = async_client(connection)
        self._core.cluster = is_cluster(self.client)
        options = options_from(self.client)
        self._fast = PipelinedConnection(options, SOCKET_TIMEOUT) if options is not None \
            else None
        self._transport = async_transport(self._fast or self.client)
        self._core.run = self._run

    @property
    def prefix(self) -> str:
        """The key prefix (``bull`` by default)."""
        return self._core.prefix

    async def _run(self, plan: Plan[T]) -> T:
        return await run_async(self._transport, plan)

    async def add(self, tree: Mapping[str, Any]) -> FlowNode[AsyncJob]:
        """Add one flow atomically (see :meth:`FlowProducer.add`)."""
        specs = self._core.encode(tree)
        return (await self._run(self._core.add_plan([specs])))[0]

    async def add_bulk(self, trees: Sequence[Mapping[str, Any]]) -> list[FlowNode[AsyncJob]]:
        """Add several flows in one round trip (each one atomically)."""
        encoded = [self._core.encode(tree) for tree in _trees(trees)]
        return await self._run(self._core.add_plan(encoded)) if encoded else []

    async def get_flow(self, job_id: str, queue_name: str, depth: int = 10,
                       max_children: int = 1000) -> FlowNode[AsyncJob] | None:
        """The stored tree under a job (see :meth:`FlowProducer.get_flow`)."""
        return await self._run(self._core.flow_plan(job_id, queue_name, depth, max_children))

    async def close(self) -> None:
        """Close the connection (the client too, when this producer created it)."""
        if self._fast is not None:
            await self._fast.aclose()
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncFlowProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["AsyncFlowProducer", "FlowNode", "FlowProducer"]
