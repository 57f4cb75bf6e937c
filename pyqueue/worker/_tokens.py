"""The lock tokens of the jobs a worker holds, shared safely between the event loop and the
maintenance thread.
"""

from __future__ import annotations

import threading


class LockTokens:
    """Job id -> lock token of every job this worker holds (renewed while held).

    The event loop adds and removes entries; the maintenance thread reads
    snapshots to renew the locks and drops the ones Redis says are lost. All
    access goes through one lock.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tokens)

    def hold(self, job_id: str, token: str) -> None:
        """Start renewing ``job_id``'s lock."""
        with self._lock:
            self._tokens[job_id] = token

    def release(self, job_id: str, token: str | None) -> None:
        """Stop renewing ``job_id``'s lock if it is still held with ``token``."""
        # Only the event loop adds entries, so an entry missing (or held with
        # another token) now stays so: skip the lock (a job's finish and its
        # slot both release it, and the second finds it gone).
        if self._tokens.get(job_id) != token:
            return
        with self._lock:
            if self._tokens.get(job_id) == token:
                del self._tokens[job_id]

    def snapshot(self) -> tuple[list[str], list[str]]:
        """The held job ids and their tokens, in the same order."""
        with self._lock:
            ids = list(self._tokens)
            return ids, [self._tokens[i] for i in ids]

    def take_all(self) -> dict[str, str]:
        """Every held lock, removed from the registry (shutdown hands them back)."""
        with self._lock:
            held = dict(self._tokens)
            self._tokens.clear()
        return held

    def drop_lost(self, lost: list[str], seen: dict[str, str]) -> list[str]:
        """Remove the ids of ``lost`` still held with the token they had in ``seen``
        (a job finished meanwhile is not a loss); returns the ones removed."""
        with self._lock:
            gone = [job_id for job_id in lost
                    if job_id in self._tokens and self._tokens[job_id] == seen.get(job_id)]
            for job_id in gone:
                del self._tokens[job_id]
        return gone
