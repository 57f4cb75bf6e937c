"""Flows as plans: a tree of jobs checked and encoded once (``encode_tree``), written
by one addFlow call (``add_trees``), and a parent's children by outcome
(``dependencies_plan``); ``flow.py`` reads a stored tree back.

A tree node is ``{"name", "queue_name", "data", "opts", "children"}``; ``opts``
takes ``add``'s options plus the failure policies of a child
(``fail_parent_on_failure`` ...), and on the root ``parent`` (an existing job
the whole flow goes under). Everything is checked here, before any write.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _scripts as S
from ._clock import VERSION, Clock
from ._keys import QueueKeys, validate_queue_name
from ._ops_read import decode_json
from ._plan import Plan, cmd
from .errors import InvalidJobIdError, InvalidJobOptionsError, JobStateError
from .options import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    EncodedJob,
    encode_job,
    encode_json,
    encode_options,
    failure_policy,
)

#: Keys a tree node may have.
NODE_KEYS = frozenset({"name", "queue_name", "data", "opts", "children"})
#: Options a flow node cannot take (refused before any write): see docs/flows.md.
_REFUSED = {
    "deduplication": "a deduplicated job is not added, so its parent would wait for a job "
                     "that is not its child",
    "repeat": "repeat: a job scheduler's iterations cannot be children",
}
MAX_DEPTH = 100


@dataclass
class FlowSpec:
    """One checked node: its queue, encoded job and place in the tree."""

    keys: QueueKeys
    job: EncodedJob
    up: int | None  # index of the parent node in the flat list
    policy: str | None
    children: list[int] = field(default_factory=list)
    #: The root only: an existing job that becomes its parent (``opts["parent"]``).
    parent: tuple[QueueKeys, str] | None = None


def check_parent(parent: object, prefix: str) -> tuple[str, str]:
    """``{"id": ..., "queue": ...}`` (``queue`` a name, or ``<prefix>:<name>``) ->
    (job id, queue name)."""
    if not isinstance(parent, Mapping) or set(parent) != {"id", "queue"}:
        raise InvalidJobOptionsError(
            f"parent must be {{'id': job_id, 'queue': queue_name}}, got {parent!r}")
    job_id, queue = parent["id"], parent["queue"]
    if not isinstance(job_id, str) or not job_id or ":" in job_id:
        raise InvalidJobIdError(f"parent id must be a job id (str without ':'), got {job_id!r}")
    if isinstance(queue, str) and queue.startswith(prefix + ":"):
        queue = queue[len(prefix) + 1:]
    return job_id, validate_queue_name(queue)


def encode_node_options(opts: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """``opts`` without ``parent``, after refusing what flows cannot hold."""
    for option, why in _REFUSED.items():
        if opts.get(option) is not None:
            raise InvalidJobOptionsError(f"{where}: option {option!r} is not supported in "
                                         f"flows ({why})")
    return {k: v for k, v in opts.items() if k != "parent"}


def encode_tree(tree: object, prefix: str, defaults: Mapping[str, Mapping[str, Any]] | None = None,
                *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> list[FlowSpec]:
    """Check and encode a flow tree; returns its nodes breadth first (parents first).

    ``defaults`` maps queue names to default job options.
    """
    out: list[FlowSpec] = []
    taken: set[tuple[str, str]] = set()
    # Breadth first, as BullMQ writes a flow: a level's jobs before the next level's.
    pending: deque[tuple[object, int | None, str, int]] = deque([(tree, None, "flow", 0)])
    while pending:
        node, up, path, depth = pending.popleft()
        if depth > MAX_DEPTH:
            raise InvalidJobOptionsError(f"flow deeper than {MAX_DEPTH} levels at {path}")
        if not isinstance(node, Mapping):
            raise InvalidJobOptionsError(f"{path}: a flow node must be a mapping, got {node!r}")
        unknown = set(node) - NODE_KEYS
        if unknown:
            raise InvalidJobOptionsError(f"{path}: unknown keys {sorted(unknown)} "
                                         f"(known: {sorted(NODE_KEYS)})")
        if "name" not in node or "queue_name" not in node:
            raise InvalidJobOptionsError(f"{path}: a flow node needs 'name' and 'queue_name'")
        keys = QueueKeys(prefix, validate_queue_name(node["queue_name"]))
        opts = node.get("opts") or {}
        if not isinstance(opts, Mapping):
            raise InvalidJobOptionsError(f"{path}: opts must be a mapping, got {opts!r}")
        parent = None
        if opts.get("parent") is not None:
            if up is not None:
                raise InvalidJobOptionsError(f"{path}: only the root of a flow may name a "
                                             "parent (the others have theirs in the tree)")
            parent_id, parent_queue = check_parent(opts["parent"], prefix)
            parent = (QueueKeys(prefix, parent_queue), parent_id)
        merged = {**(defaults or {}).get(keys.name, {}), **encode_node_options(opts, path)}
        policy = failure_policy(merged)
        options = encode_options(merged)
        job = encode_job(node["name"], node.get("data"), options,
                         max_payload_bytes=max_payload_bytes)
        if options.job_id:
            if (keys.name, options.job_id) in taken:
                raise InvalidJobIdError(f"{path}: job_id {options.job_id!r} appears twice in "
                                        f"queue {keys.name!r} of this flow")
            taken.add((keys.name, options.job_id))
        index = len(out)
        out.append(FlowSpec(keys, job, up, policy, parent=parent))
        if up is not None:
            out[up].children.append(index)
        children = node.get("children") or []
        if not isinstance(children, Sequence) or isinstance(children, str | bytes):
            raise InvalidJobOptionsError(f"{path}: children must be a list, got {children!r}")
        for i, child in enumerate(children):
            pending.append((child, index, f"{path}.children[{i}]", depth + 1))
    return out


def script_nodes(specs: list[FlowSpec]) -> list[dict[str, Any]]:
    """addFlow's ``nodes`` (1-based ``up``, as Lua indexes), parents first."""
    nodes = []
    for spec in specs:
        options = spec.job.options
        node: dict[str, Any] = {"qb": spec.keys.base, "id": options.job_id,
                                "name": spec.job.name, "data": spec.job.data,
                                "opts": options.opts, "delay": options.delay_ms,
                                "priority": options.priority, "kids": len(spec.children)}
        if options.lifo:
            node["lifo"] = True
        if spec.up is not None:
            node["up"] = spec.up + 1
        if spec.policy is not None:
            node["pol"] = spec.policy
        if options.group is not None:
            node["gid"] = options.group
        nodes.append(node)
    return nodes


#: One added tree: (status, ids, now). Status 1 added; 0 the root's custom id existed.
Added = tuple[int, list[str], int]


def _parent_ref(specs: list[FlowSpec]) -> tuple[str, str, str] | None:
    """addFlow's (key, id, queue base) of the root's existing parent, if any."""
    if specs[0].parent is None:
        return None
    pkeys, pid = specs[0].parent
    return pkeys.job(pid), pid, pkeys.base


def add_trees(clock: Clock, trees: list[list[FlowSpec]]) -> Plan[list[Added]]:
    """Write each tree with one addFlow call (all in one round trip)."""
    if clock.needs_sync(register=True):
        yield from clock.sync(register=True)
    now = clock.now_ms()
    calls = [S.add_flow(specs[0].keys, now, nodes=script_nodes(specs),
                        parent=_parent_ref(specs), version=f"pyqueue:{VERSION}", me=None)
             for specs in trees]
    replies = yield calls
    out: list[Added] = []
    for specs, reply in zip(trees, replies, strict=True):
        if reply == S.E_JOB_CORRUPT and specs[0].parent is not None:
            pkeys, pid = specs[0].parent
            raise JobStateError(f"add_flow: the parent job {pkeys.job(pid)!r} is damaged (not "
                                "a hash, or its :dependencies not a set); nothing was added",
                                pid)
        S.check(reply, op="add_flow")
        out.append((int(reply[0]), [S.text(x) for x in reply[1:]], now))
    return out


def stored_fields(spec: FlowSpec, specs: list[FlowSpec], ids: list[str],
                  now: int) -> dict[str, str]:
    """The hash addFlow wrote for ``spec`` (so no read-back is needed)."""
    options = spec.job.options
    fields = {"name": spec.job.name, "data": spec.job.data, "opts": options.opts,
              "timestamp": str(now), "delay": str(options.delay_ms),
              "priority": str(options.priority)}
    if options.group is not None:
        fields["gid"] = options.group
    ref = spec.parent
    if spec.up is not None:
        ref = (specs[spec.up].keys, ids[spec.up])
    if ref is not None:
        pkeys, pid = ref
        queue_key = pkeys.queue_key
        fields["opts"] = encode_json({"parent": {"id": pid, "queue": queue_key},
                                      **options.raw_opts}, "opts")
        fields["parentKey"] = pkeys.job(pid)
        parent_json: dict[str, Any] = {"id": pid, "queueKey": queue_key}
        if spec.policy is not None:
            parent_json[spec.policy] = True
        fields["parent"] = encode_json(parent_json, "parent")
    return fields


def dependencies_plan(job_key: str, count_only: bool = False
                      ) -> Plan[dict[str, Any]]:
    """A parent's children by outcome (``count_only``: how many of each)."""
    if count_only:
        replies = yield [cmd("HLEN", QueueKeys.flow_key(job_key, "processed")),
                         cmd("SCARD", QueueKeys.flow_key(job_key, "dependencies")),
                         cmd("HLEN", QueueKeys.flow_key(job_key, "failed")),
                         cmd("ZCARD", QueueKeys.flow_key(job_key, "unsuccessful"))]
        counts = [int(r) for r in replies]
        return dict(zip(("processed", "unprocessed", "ignored", "failed"), counts,
                        strict=True))
    replies = yield [cmd("HGETALL", QueueKeys.flow_key(job_key, "processed")),
                     cmd("SMEMBERS", QueueKeys.flow_key(job_key, "dependencies")),
                     cmd("HGETALL", QueueKeys.flow_key(job_key, "failed")),
                     cmd("ZRANGE", QueueKeys.flow_key(job_key, "unsuccessful"), 0, -1)]
    processed = {k: decode_json(v) for k, v in S.pairs_to_dict(replies[0]).items()}
    failed_keys = [S.text(x) for x in replies[3]]
    reasons = (yield [cmd("HGET", key, "failedReason") for key in failed_keys]) \
        if failed_keys else []
    return {"processed": processed,
            "unprocessed": sorted(S.text(x) for x in replies[1]),
            "failed": {key: None if r is None else S.text(r)
                       for key, r in zip(failed_keys, reasons, strict=True)},
            "ignored": S.pairs_to_dict(replies[2])}
