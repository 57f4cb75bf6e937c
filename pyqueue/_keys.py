"""The only place that knows pyqueue's (that is, BullMQ v6's) Redis key names.

Queue keys are ``<prefix>:<queue>:<suffix>`` and a job's hash is
``<prefix>:<queue>:<job_id>``. Scripts receive the keys they touch through
KEYS, and derive job keys from the ``<prefix>:<queue>:`` base they are given,
so that a hash tag in the prefix (``{bull}``) or the queue name (``{email}``)
keeps every key of a queue in one Redis Cluster slot.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from functools import cached_property

from .errors import InvalidJobIdError, InvalidJobOptionsError, InvalidQueueNameError

#: Suffixes of the queue-level keys, in the order scripts refer to them.
QUEUE_SUFFIXES = (
    "wait",
    "active",
    "prioritized",
    "pc",
    "delayed",
    "waiting-children",
    "completed",
    "failed",
    "stalled",
    "stalled-check",
    "limiter",
    "meta",
    "events",
    "id",
    "marker",
    "repeat",
    "paused",
)


#: Names a custom job id may not take. A job's hash is ``<prefix>:<queue>:<id>``,
#: so a job named like a queue-level key would overwrite that key (or be
#: overwritten by it), and a job named like a key namespace (``de``, ``repeat``,
#: ``pq``...) would put its own sub-keys (``<id>:logs``, ``<id>:lock``,
#: ``<id>:failed``...) inside that namespace. The list holds BullMQ v6's
#: queue keys (``QUEUE_SUFFIXES`` plus ``de`` and ``metrics``), the names
#: older and newer BullMQ versions use, and pyqueue's own namespaces.
RESERVED_JOB_IDS = frozenset({
    *QUEUE_SUFFIXES,
    "de",  # de:<dedupId>: deduplication owners
    "metrics",  # metrics:completed, metrics:failed (+ :data)
    # older BullMQ / Bull keys, kept out so a legacy queue cannot be damaged
    "waiting", "priority", "delay", "drained", "progress", "resumed",
    # pyqueue's own namespaces
    "pq",  # pq:cancel, pq:workers, pq:workerinfo, pq:suppressed, pq:quota:<day>,
    # pq:softbounce:<digest>, pq:feedback:<source>:<id>, pq:sw:<rule>:<subject>
    "gr",  # groups: gr:ready, gr:state, gr:delayed, ...
    "g",  # g:<gid>:wait, g:<gid>:limiter
    "dn",  # dn:<dedupId>: keep-last deduplication's pending add
})

# A scheduler's pending iteration is the job ``repeat:<schedulerId>:<ms>``; a
# scheduler id with a segment of 10+ digits after a ':' could name another
# scheduler's iteration (or one of its sub-keys) instead of a scheduler.
_ITERATION_LIKE = re.compile(r":\d{10,}(?::|$)")

#: A flow parent's sub-keys (BullMQ's): ``dependencies`` (set of child keys not
#: finished), ``processed`` (hash child key -> return value JSON), ``failed``
#: (hash child key -> failed reason: failures ignored or continued past),
#: ``unsuccessful`` (zset of child keys that failed with fail_parent_on_failure).
FLOW_PARTS = ("dependencies", "processed", "failed", "unsuccessful")

#: Keys whose presence means a queue exists, as ``<queue>`` + marker: its meta
#: hash, its id counter (both written by the first add) and pyqueue's worker
#: heartbeats.
QUEUE_MARKERS = (":meta", ":id", ":pq:workers")

#: Fields of a queue's ``meta`` hash for dead letters: the name of the queue's
#: dead-letter queue (same prefix), read by the scripts that fail jobs
#: (lua/includes/deadletter.lua); and the mark ("1") on a queue that serves as
#: one.
META_DEAD_LETTER_QUEUE = "pq:dlq"
META_IS_DEAD_LETTER_QUEUE = "pq:isdlq"

#: Where each public job state lives (a list or a zset).
_STATE_KEYS = {"waiting": "wait", "active": "active", "paused": "paused",
               "prioritized": "prioritized", "delayed": "delayed", "completed": "completed",
               "failed": "failed", "waiting-children": "waiting-children"}


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` unless it names one of the queue's own keys.

    Raises :class:`~pyqueue.errors.InvalidJobIdError` for the names in
    :data:`RESERVED_JOB_IDS` (the ``:`` and all-digit rules are checked by
    ``options.validate_job_id``, which calls this).
    """
    if job_id in RESERVED_JOB_IDS:
        raise InvalidJobIdError(
            f"job_id {job_id!r} is reserved: the queue keeps its own key "
            f"'<prefix>:<queue>:{job_id}' there (reserved ids: "
            f"{', '.join(sorted(RESERVED_JOB_IDS))})"
        )
    return job_id


def check_scheduler_id(scheduler_id: str) -> str:
    """Return ``scheduler_id`` unless its key could collide with a job's.

    Scheduler hashes are ``repeat:<id>`` and their iterations the jobs
    ``repeat:<id>:<ms>``, so an id such as ``"a:1735689600000"`` would name
    scheduler ``a``'s iteration; such ids raise
    :class:`~pyqueue.errors.InvalidJobOptionsError`. Every other string is
    safe: the ``repeat:`` namespace holds nothing else (``repeat`` itself is
    a reserved job id). Deduplication ids need no check at all: they live
    under ``de:`` and ``dn:``, which no job can enter.
    """
    if _ITERATION_LIKE.search(scheduler_id):
        raise InvalidJobOptionsError(
            f"scheduler_id {scheduler_id!r} has a ':' followed by 10 or more digits, "
            "the form of a scheduler's iteration job id (repeat:<id>:<ms>)"
        )
    return scheduler_id


def validate_queue_name(name: object) -> str:
    """Return ``name`` if it is a valid queue name, else raise ``InvalidQueueNameError``."""
    if not isinstance(name, str):
        raise InvalidQueueNameError(
            f"queue name must be a str, got {type(name).__name__}: {name!r}"
        )
    if not name:
        raise InvalidQueueNameError("queue name must not be empty")
    if ":" in name:
        raise InvalidQueueNameError(f"queue name must not contain ':', got {name!r}")
    return name


def validate_prefix(prefix: object) -> str:
    """Return ``prefix`` if usable as a key prefix, else raise ``InvalidQueueNameError``."""
    if not isinstance(prefix, str) or not prefix:
        raise InvalidQueueNameError(f"prefix must be a non-empty str, got {prefix!r}")
    return prefix


@dataclass(frozen=True)
class QueueKeys:
    """Key names of one queue."""

    prefix: str
    name: str

    @property
    def base(self) -> str:
        """``<prefix>:<queue>:``, to which job ids and suffixes are appended."""
        return f"{self.prefix}:{self.name}:"

    def key(self, suffix: str) -> str:
        """A queue-level key, e.g. ``key("wait")``."""
        return f"{self.prefix}:{self.name}:{suffix}"

    def job(self, job_id: str) -> str:
        """A job's hash key."""
        return f"{self.prefix}:{self.name}:{job_id}"

    def lock(self, job_id: str) -> str:
        """A job's lock key."""
        return f"{self.prefix}:{self.name}:{job_id}:lock"

    def logs(self, job_id: str) -> str:
        """A job's log list."""
        return f"{self.prefix}:{self.name}:{job_id}:logs"

    @property
    def queue_key(self) -> str:
        """``<prefix>:<queue>``: BullMQ's ``queueKey`` (a flow child's ``parent.queueKey``)."""
        return f"{self.prefix}:{self.name}"

    @staticmethod
    def flow_key(job_key: str, part: str) -> str:
        """A flow parent's sub-key (``part`` from :data:`FLOW_PARTS`) of the job
        hash at ``job_key``, which may be in any queue of the prefix."""
        assert part in FLOW_PARTS, part
        return f"{job_key}:{part}"

    def dedup(self, dedup_id: str) -> str:
        """The deduplication key for ``dedup_id``."""
        return f"{self.prefix}:{self.name}:de:{dedup_id}"

    @property
    def wait(self) -> str:
        return self.key("wait")

    @property
    def active(self) -> str:
        return self.key("active")

    @property
    def delayed(self) -> str:
        return self.key("delayed")

    @property
    def completed(self) -> str:
        return self.key("completed")

    @property
    def failed(self) -> str:
        return self.key("failed")

    @property
    def meta(self) -> str:
        return self.key("meta")

    @property
    def events(self) -> str:
        return self.key("events")

    @property
    def marker(self) -> str:
        return self.key("marker")

    @property
    def stalled(self) -> str:
        return self.key("stalled")

    @property
    def limiter(self) -> str:
        return self.key("limiter")

    @property
    def prioritized(self) -> str:
        return self.key("prioritized")

    @property
    def repeat(self) -> str:
        """The schedulers zset (member = scheduler id, score = next ms)."""
        return self.key("repeat")

    def scheduler(self, scheduler_id: str) -> str:
        """A scheduler's hash, ``repeat:<id>``."""
        return self.key(f"repeat:{scheduler_id}")

    def state_key(self, state: str) -> str:
        """The list or zset of a public state (``waiting`` is ``wait``)."""
        return self.key(_STATE_KEYS[state])

    @property
    def workers(self) -> str:
        """pyqueue's worker heartbeats: zset, member = worker id, score = ms."""
        return self.key("pq:workers")

    @property
    def worker_info(self) -> str:
        """pyqueue's worker health: hash, worker id -> JSON."""
        return self.key("pq:workerinfo")

    @property
    def fetch_seq(self) -> str:
        """pyqueue's count of jobs its workers have moved to active (string):
        the first part of a lock token, so a finish knows how many jobs went
        into ``active`` after its own and which end to search from."""
        return self.key("pq:fseq")

    @property
    def cancel(self) -> str:
        """pyqueue's set of job ids whose cancellation was requested."""
        return self.key("pq:cancel")

    @property
    def suppressed(self) -> str:
        """pyqueue's email suppression hash."""
        return self.key("pq:suppressed")

    def quota(self, day: str) -> str:
        """pyqueue's email quota counter for ``day`` (``YYYY-MM-DD``, UTC)."""
        return self.key(f"pq:quota:{day}")

    def soft_bounces(self, digest: str) -> str:
        """pyqueue's email soft-bounce counter of one address (by its digest, never
        the address itself)."""
        return self.key(f"pq:softbounce:{digest}")

    def feedback_seen(self, source: str, message_id: str) -> str:
        """pyqueue's marker of one processed feedback notification (``ses``/``resend``)."""
        return self.key(f"pq:feedback:{source}:{message_id}")

    def send_window(self, rule: str, subject: str) -> str:
        """pyqueue's email sliding-window log (zset) of limit ``rule`` for ``subject``
        (an address digest, a user id digest, or ``*``). lua/checkSendLimits.lua
        builds the same name from the base: ``<base>pq:sw:<rule>:<subject>``."""
        return self.key(f"pq:sw:{rule}:{subject}")

    @property
    def shard_limits(self) -> str:
        """A sharded queue's global limits (hash: max, duration, concurrency), on the
        keys of its coordinator, the queue ``{<name>}`` (pyqueue/_shard_limits.py)."""
        return self.key("pq:limits")

    @property
    def shard_rate(self) -> str:
        """The coordinator's rate window (hash: n granted, w start ms; expires with it)."""
        return self.key("pq:limits:rate")

    @property
    def shard_leases(self) -> str:
        """The coordinator's concurrency leases (zset, score = expiry ms)."""
        return self.key("pq:limits:leases")

    @property
    def groups_all(self) -> str:
        """The set of every group id that has jobs."""
        return self.key("gr:all")

    @property
    def groups_delayed(self) -> str:
        """The zset of delayed grouped jobs."""
        return self.key("gr:delayed")

    def group_wait(self, group_id: str) -> str:
        """A group's ready jobs (zset)."""
        return self.key(f"g:{group_id}:wait")

    def metrics(self, kind: str) -> str:
        """BullMQ's metrics hash of ``kind`` (``completed`` or ``failed``); its
        per-minute list is this key plus ``:data``."""
        return self.key(f"metrics:{kind}")

    def metrics_data(self, kind: str) -> str:
        """BullMQ's per-minute counts of ``kind`` (list, newest first)."""
        return self.key(f"metrics:{kind}:data")

    def connection_name(self, worker_name: str | None) -> str:
        """BullMQ's worker connection name: ``<prefix>:<base64(queue)>[:w:<name>]``."""
        encoded = base64.b64encode(self.name.encode()).decode()
        suffix = f":w:{worker_name}" if worker_name else ""
        return f"{self.prefix}:{encoded}{suffix}"

    @staticmethod
    def queue_scan_pattern(prefix: str, marker: str) -> str:
        """SCAN pattern of every queue's ``marker`` key under ``prefix``."""
        return f"{prefix}:*{marker}"

    @staticmethod
    def queue_name_from_marker(prefix: str, key: str, marker: str) -> str | None:
        """The queue name in a key found by :meth:`queue_scan_pattern`, or None."""
        name = key[len(prefix) + 1:-len(marker)]
        return name if ":" not in name else None

    @staticmethod
    def parse_connection_name(prefix: str, name: str) -> tuple[str, str] | None:
        """``(queue, worker name)`` from a worker connection name made by
        :meth:`connection_name` (BullMQ's too), else ``None``."""
        head = f"{prefix}:"
        if not name.startswith(head):
            return None
        encoded, _, worker_name = name[len(head):].partition(":w:")
        try:
            queue = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (queue, worker_name) if queue and ":" not in queue else None

    @staticmethod
    def parse_job_key(prefix: str, key: str) -> tuple[str, str] | None:
        """``(queue, job id)`` from a job key under ``prefix`` (``parentKey``), else None."""
        head = f"{prefix}:"
        if not key.startswith(head):
            return None
        queue, sep, job_id = key[len(head):].partition(":")
        return (queue, job_id) if sep and queue and job_id else None

    def queue_marker(self, marker: str) -> str:
        """The key whose presence shows this queue exists (``marker`` from
        :data:`QUEUE_MARKERS`)."""
        return f"{self.prefix}:{self.name}{marker}"

    def sibling(self, name: str) -> QueueKeys:
        """The keys of queue ``name`` under the same prefix."""
        return QueueKeys(self.prefix, name)

    def all(self, *suffixes: str) -> list[str]:
        """The keys for ``suffixes`` in order (all queue keys when none are given)."""
        if not suffixes:
            return list(self._all)
        return [self.key(s) for s in suffixes]

    @cached_property
    def _all(self) -> tuple[str, ...]:
        return tuple(self.key(s) for s in QUEUE_SUFFIXES)

