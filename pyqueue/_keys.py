"""The only place that knows pyqueue's (that is, BullMQ v6's) Redis key names.

Queue keys are ``<prefix>:<queue>:<suffix>`` and a job's hash is
``<prefix>:<queue>:<job_id>``. Scripts receive the keys they touch through
KEYS, and derive job keys from the ``<prefix>:<queue>:`` base they are given,
so that a hash tag in the prefix (``{bull}``) or the queue name (``{email}``)
keeps every key of a queue in one Redis Cluster slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .errors import InvalidQueueNameError

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

    def all(self, *suffixes: str) -> list[str]:
        """The keys for ``suffixes`` in order (all queue keys when none are given)."""
        if not suffixes:
            return list(self._all)
        return [self.key(s) for s in suffixes]

    @cached_property
    def _all(self) -> tuple[str, ...]:
        return tuple(self.key(s) for s in QUEUE_SUFFIXES)

