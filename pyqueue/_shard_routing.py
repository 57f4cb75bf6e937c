"""How a sharded queue (:mod:`pyqueue.sharded`) names its shards and places
jobs on them: :func:`shard_names`, :class:`Router`, and the aggregation of
the shards' answers."""

from __future__ import annotations

import itertools
import re
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._cluster import key_slot
from ._keys import validate_prefix, validate_queue_name
from .errors import ConfigurationError, InvalidJobOptionsError

__all__ = ["Router", "merge_jobs", "shard_names", "sum_counts"]

_SLOTS = 16384
_MAX_SHARDS = 1024
_OWN_ID = re.compile(r"^(\d+)-[0-9a-f]{16}$")


def shard_names(name: str, shards: int) -> list[str]:
    """The sub-queue names of queue ``name`` split into ``shards`` shards."""
    validate_queue_name(name)
    if "{" in name or "}" in name:
        raise ConfigurationError(
            f"sharded queue name {name!r} must not hold braces: pyqueue makes each "
            "shard's hash tag itself")
    if isinstance(shards, bool) or not isinstance(shards, int) \
            or not 1 <= shards <= _MAX_SHARDS:
        raise ConfigurationError(f"shards must be an int in 1..{_MAX_SHARDS}, got {shards!r}")
    names = []
    for i in range(shards):
        low, high = i * _SLOTS // shards, (i + 1) * _SLOTS // shards
        # The middle half of the range: clear of a primary's edge when k does
        # not divide the primaries' ranges exactly.
        quarter = (high - low) // 4
        low, high = low + quarter, high - quarter
        for n in itertools.count():
            tag = f"{name}.{i}.{n}"
            if low <= key_slot(tag) < high:
                names.append(f"{{{tag}}}")
                break
    return names


#: Jobs of an ``add_bulk`` that go to one shard: ``(position, spec)``.
_Placed = list[tuple[int, dict[str, Any]]]


def _hash(text: str, shards: int) -> int:
    return zlib.crc32(text.encode()) % shards


class Router:
    """Which shard a job goes to, and the ids pyqueue gives jobs."""

    def __init__(self, name: str, shards: int, prefix: str) -> None:
        self.names = shard_names(name, shards)
        if "{" in validate_prefix(prefix):
            raise ConfigurationError(
                f"prefix {prefix!r} of a sharded queue must not hold a hash tag: every "
                "shard would land in the prefix's slot")
        self.shards = shards
        self._turn = itertools.count()

    def place(self, opts: dict[str, Any], shard_key: str | None) -> tuple[int, dict[str, Any]]:
        """``(shard, options)`` for a new job (``job_id`` filled in when missing)."""
        job_id = opts.get("job_id")
        if job_id is not None:
            if shard_key is not None:
                raise InvalidJobOptionsError(
                    "pass job_id or shard_key, not both: a job_id decides its shard")
            return _hash(str(job_id), self.shards), opts
        key = shard_key if shard_key is not None else opts.get("group")
        dedup = opts.get("deduplication")
        if key is None and isinstance(dedup, Mapping) and dedup.get("id") is not None:
            key = "dedup " + str(dedup["id"])
        shard = _hash(str(key), self.shards) if key is not None \
            else next(self._turn) % self.shards
        return shard, {**opts, "job_id": f"{shard}-{uuid.uuid4().hex[:16]}"}

    def shard_of(self, job_id: str) -> int:
        """The shard of a job id (pyqueue's own form, else the id's hash)."""
        match = _OWN_ID.match(str(job_id))
        if match is not None and int(match.group(1)) < self.shards:
            return int(match.group(1))
        return _hash(str(job_id), self.shards)

    def bulk(self, jobs: Sequence[Mapping[str, Any]]) -> dict[int, _Placed]:
        """``{shard: [(position, job spec)]}`` for ``add_bulk``."""
        out: dict[int, _Placed] = {}
        for position, spec in enumerate(jobs):
            if not isinstance(spec, Mapping):
                raise InvalidJobOptionsError(f"add_bulk: job {position} must be a mapping")
            opts = dict(spec.get("opts") or {})
            shard_key = opts.pop("shard_key", None)
            shard, opts = self.place(opts, shard_key)
            out.setdefault(shard, []).append((position, {**spec, "opts": opts}))
        return out


def sum_counts(all_counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in all_counts:
        for state, n in counts.items():
            total[state] = total.get(state, 0) + n
    return total


def merge_jobs(lists: Iterable[list[Any]], start: int, end: int, asc: bool) -> list[Any]:
    jobs = [job for jobs in lists for job in jobs]
    jobs.sort(key=lambda job: job.timestamp.timestamp() if job.timestamp else 0.0,
              reverse=not asc)
    return jobs[start:] if end == -1 else jobs[start:end + 1]
