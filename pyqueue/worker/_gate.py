"""The fetch gate: an internal extension point through which something outside the queue's slot
(a sharded queue's global limits, :mod:`pyqueue._shard_limits`) decides how many jobs a worker
may take. A worker without a gate never consults one (no call, no await per job).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._maintenance import SyncRunner


@dataclass(frozen=True)
class Grant:
    """What :meth:`FetchGate.acquire` allows: take at most ``n`` jobs; when ``n`` is 0,
    wait ``wait`` seconds (or until a slot ends) before asking again. ``data`` is the
    gate's own record of the grant, handed back to :meth:`FetchGate.taken`."""

    n: int
    wait: float = 0.0
    data: Any = None


class FetchGate:
    """The worker consults its gate (when it has one) around every fetch:

    - :meth:`acquire` before a fetch of up to ``k`` jobs;
    - :meth:`taken` after it, with the ids of the jobs obtained (none when the
      fetch failed), so the gate can give back what was not used;
    - :meth:`release` when a job's slot is done with it (completed, failed,
      retried, delayed or handed back);
    - :meth:`fetch_next` before a finish call, which may also fetch the next
      jobs (only when the gate says so: those jobs pass no :meth:`acquire`);
    - :meth:`renew` from the maintenance thread, with the lock renewal, for the
      jobs the worker holds.

    This base class lets everything through (every method may be overridden).
    """

    async def acquire(self, k: int) -> Grant:
        """How many of ``k`` jobs the worker may take now."""
        return Grant(k)

    def taken(self, job_ids: Sequence[str], grant: Grant) -> None:
        """The fetch allowed by ``grant`` obtained ``job_ids`` (called on the loop)."""

    def release(self, job_id: str) -> None:
        """The worker is done with ``job_id`` (called on the loop)."""

    def fetch_next(self) -> bool:
        """Whether a finish may fetch the next jobs without :meth:`acquire`."""
        return True

    def renew(self, runner: SyncRunner, job_ids: Sequence[str], lock_ms: int) -> None:
        """Extend whatever the gate holds for ``job_ids`` (maintenance thread)."""
