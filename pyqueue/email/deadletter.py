"""The dead-letter queue: finally failed mail, kept with its reason for replay.

A mail job that fails for good (a permanent 5xx, attempts exhausted, bad job
data) is copied to a separate queue named ``<queue>-dlq`` on the same prefix,
as a job whose id is the failed job's id (so copying twice keeps one entry)
and whose data is::

    {"queue": "email", "job_id": "mail-otp-42", "name": "email",
     "data": {...the mail...}, "reason": "550 5.7.1 ...", "kind": "fail",
     "attempts_made": 1, "failed_at": 1767225600.0,
     "job_options": {"attempts": 5, "backoff": {...}, "priority": 1, "group": "..."}}

No worker consumes it: the entries sit in ``waiting`` (visible in
``pyqueue info`` and Bull Board). After a fix, :meth:`DeadLetters.replay`
(or ``pyqueue email dlq replay``) adds each mail back to the original queue
with fresh attempts, under the id ``<job id>-r<n>`` (the original failed job
still holds its id), and removes the entry. The ``mail_uid`` in the data is
unchanged, so the Message-ID stays the same.
"""

from __future__ import annotations

import builtins
import re
import time
from typing import Any

from ..connection import SyncClient
from ..job import JobBase
from ..queue import AsyncQueue, Queue

_REPLAY_SUFFIX = re.compile(r"^(.*)-r(\d+)$")


def dlq_name(queue_name: str) -> str:
    """The dead-letter queue's name for ``queue_name``."""
    return f"{queue_name}-dlq"


def job_options_of(job: JobBase) -> dict[str, Any]:
    """The options worth keeping for a replay, in ``add()``'s snake_case (seconds)."""
    opts = job.opts
    out: dict[str, Any] = {"attempts": job.attempts}
    backoff = opts.get("backoff")
    if isinstance(backoff, dict):
        out["backoff"] = {k: (v / 1000 if k == "delay" else v) for k, v in backoff.items()}
    if job.priority:
        out["priority"] = job.priority
    if job.group:
        out["group"] = job.group
    return out


def entry_for(job: JobBase, reason: str, kind: str) -> dict[str, Any]:
    """The dead-letter entry (job data) for a finally failed ``job``."""
    return {"queue": job.queue_name, "job_id": job.id, "name": job.name, "data": job.data,
            "reason": reason, "kind": kind, "attempts_made": job.attempts_made + 1,
            "failed_at": time.time(), "job_options": job_options_of(job)}


async def add_async(queue: AsyncQueue, job: JobBase, reason: str, kind: str) -> None:
    """Copy ``job`` into the dead-letter queue ``queue`` (idempotent by job id)."""
    await queue.add("dead-letter", entry_for(job, reason, kind), job_id=job.id)


def next_replay_id(job_id: str) -> str:
    """``mail-x`` -> ``mail-x-r1``; ``mail-x-r1`` -> ``mail-x-r2``."""
    match = _REPLAY_SUFFIX.match(job_id)
    if match:
        return f"{match.group(1)}-r{int(match.group(2)) + 1}"
    return f"{job_id}-r1"


class DeadLetters:
    """The dead-letter queue of a mail queue (synchronous API, used by the CLI).

    ``DeadLetters("email", connection=url)`` or ``DeadLetters.of(queue)``.
    """

    def __init__(self, queue_name: str, *, connection: str | SyncClient | None = None,
                 prefix: str = "bull") -> None:
        self.queue = Queue(queue_name, connection=connection, prefix=prefix)
        self.dlq = Queue(dlq_name(queue_name), connection=self.queue.client, prefix=prefix)

    @classmethod
    def of(cls, queue: Queue) -> DeadLetters:
        """The dead-letter queue of ``queue`` (shares its connection)."""
        return cls(queue.name, connection=queue.client, prefix=queue.prefix)

    def count(self) -> int:
        """How many mails are dead-lettered."""
        return sum(self.dlq.get_job_counts("waiting", "prioritized", "delayed").values())

    def list(self, limit: int = 100) -> builtins.list[dict[str, Any]]:
        """Entries, oldest first: the entry data plus ``id`` (the DLQ job id)."""
        jobs = self.dlq.get_jobs(["waiting"], 0, max(limit, 1) - 1, asc=True)
        return [{"id": job.id, **job.data} for job in jobs if isinstance(job.data, dict)]

    def get(self, job_id: str) -> dict[str, Any] | None:
        """One entry by the failed job's id, or ``None``."""
        job = self.dlq.get_job(job_id)
        return {"id": job.id, **job.data} if job and isinstance(job.data, dict) else None

    def replay(self, job_id: str | None = None, *, limit: int = 1000) -> builtins.list[str]:
        """Add dead-lettered mail back to the queue (one id, or all up to ``limit``)
        with fresh attempts; returns the new job ids. Replayed entries are removed."""
        entries = [self.get(job_id)] if job_id is not None else self.list(limit)
        new_ids = []
        for entry in entries:
            if entry is None:
                continue
            new_id = next_replay_id(str(entry["job_id"]))
            opts = dict(entry.get("job_options") or {})
            self.queue.add(str(entry.get("name") or "email"), entry["data"], job_id=new_id,
                           **opts)
            self.dlq.remove(entry["id"])
            new_ids.append(new_id)
        return new_ids

    def remove(self, job_id: str) -> bool:
        """Drop one entry without replaying it."""
        return self.dlq.remove(job_id)

    def purge(self) -> None:
        """Drop every entry."""
        self.dlq.drain(delayed=True)

    def close(self) -> None:
        """Release the connections (the client too, if created here)."""
        self.dlq.close()
        self.queue.close()

    def __enter__(self) -> DeadLetters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
