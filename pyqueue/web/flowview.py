"""Flows on the dashboard: a parent's children (a page of one outcome at a time, each with its
state), and the dependency counts of parents (BullMQ's ``:dependencies``, ``:processed``,
``:unsuccessful`` and ``:failed`` sub-keys of the parent's hash).

Bounded: a page names at most ``CHILD_PAGE`` children and reads their states and
names in one round trip; the child keys of one outcome are read once per page
(a set or hash of 10,000 keys is one reply of a few hundred kB).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from .. import _ops_flow
from .. import _scripts as S
from .._keys import QueueKeys
from .._plan import Plan, cmd

#: Children listed per page on a job page.
CHILD_PAGE = 50
#: The outcomes a parent's children are listed by, and the sub-key each lives in:
#: pending (not finished), processed (completed), failed (failed with
#: fail_parent_on_failure), ignored (failed and ignored or continued past).
GROUPS = ("pending", "processed", "failed", "ignored")
#: ``dependencies_plan(count_only=True)``'s names for the groups.
COUNT_NAMES = {"pending": "unprocessed", "processed": "processed", "failed": "failed",
               "ignored": "ignored"}
_DIGITS = re.compile(r"(\d+)")


@dataclass
class Child:
    """A child of a parent job, as the job page lists it."""

    queue: str
    id: str
    name: str
    state: str


@dataclass
class Children:
    """One page of a parent's children of one outcome, and every outcome's count."""

    counts: dict[str, int]
    group: str
    page: int
    pages: int
    children: list[Child]


def _natural(key: str) -> list[Any]:
    """Sort key: job ids that count up (``2`` before ``10``) in their order."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(key)]


def _group_keys(job_key: str, group: str) -> Any:
    if group == "pending":
        return cmd("SMEMBERS", QueueKeys.flow_key(job_key, "dependencies"))
    if group == "processed":
        return cmd("HKEYS", QueueKeys.flow_key(job_key, "processed"))
    if group == "failed":
        return cmd("ZRANGE", QueueKeys.flow_key(job_key, "unsuccessful"), 0, -1)
    return cmd("HKEYS", QueueKeys.flow_key(job_key, "failed"))


def dependency_counts(job_keys: list[str]) -> Plan[list[dict[str, int]]]:
    """Each parent's children by outcome (``GROUPS`` names), in one round trip."""
    if not job_keys:
        return []
    batch = []
    for key in job_keys:
        batch += [cmd("SCARD", QueueKeys.flow_key(key, "dependencies")),
                  cmd("HLEN", QueueKeys.flow_key(key, "processed")),
                  cmd("ZCARD", QueueKeys.flow_key(key, "unsuccessful")),
                  cmd("HLEN", QueueKeys.flow_key(key, "failed"))]
    replies = yield batch
    return [dict(zip(GROUPS, (int(r) for r in replies[4 * i:4 * i + 4]), strict=True))
            for i in range(len(job_keys))]


def children_page(prefix: str, job_key: str, group: str, page: int) -> Plan[Children]:
    """Page ``page`` (from 1, clamped) of the children in ``group``, with their states."""
    raw_counts = yield from _ops_flow.dependencies_plan(job_key, count_only=True)
    counts = {group_name: int(raw_counts[name]) for group_name, name in COUNT_NAMES.items()}
    if not counts[group]:  # not a parent (or none of this outcome): no more reads
        return Children(counts=counts, group=group, page=1, pages=1, children=[])
    (raw,) = yield [_group_keys(job_key, group)]
    child_keys = sorted((S.text(k) for k in raw), key=_natural)
    pages = max((len(child_keys) + CHILD_PAGE - 1) // CHILD_PAGE, 1)
    page = min(max(page, 1), pages)
    chosen = []
    for key in child_keys[(page - 1) * CHILD_PAGE:page * CHILD_PAGE]:
        where = QueueKeys.parse_job_key(prefix, key)
        if where is not None:
            chosen.append((key, where[0], where[1]))
    now_ms = int(time.time() * 1000)
    batch = []
    for key, queue, child_id in chosen:
        batch += [S.get_state(QueueKeys(prefix, queue), now_ms, id=child_id),
                  cmd("HGET", key, "name")]
    replies = (yield batch) if batch else []
    children = []
    for i, (_key, queue, child_id) in enumerate(chosen):
        state, name = replies[2 * i], replies[2 * i + 1]
        children.append(Child(queue=queue, id=child_id, name=S.text(name or ""),
                              state=S.text(state) if name is not None else "removed"))
    return Children(counts=counts, group=group, page=page, pages=pages, children=children)


__all__ = ["CHILD_PAGE", "GROUPS", "Child", "Children", "children_page", "dependency_counts"]
