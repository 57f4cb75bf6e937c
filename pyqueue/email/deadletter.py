"""The mail queue's dead letters, on pyqueue's dead-letter queues.

``EmailWorker(dead_letter=True)`` (the default) makes ``<queue>-dlq`` the mail
queue's dead-letter queue when it has none (``Queue.set_dead_letter_queue``;
a dead-letter queue set by hand is kept). From then on every mail that fails
for good (a permanent 5xx or bounce, attempts exhausted, a timed-out last
attempt, a mail failed by the stalled check) is copied there by the script
that fails it: see docs/dead-letters.md for the entry's shape.

:class:`DeadLetters` is the mail-flavoured view used by ``pyqueue email dlq``:
entries as dicts with the mail-specific names (``reason``, ``kind`` in the
email worker's words, ``failed_at`` in epoch seconds), and a replay that adds
each mail back with fresh attempts under the id ``<job id>-r<n>`` (the
original failed job still holds its id). The ``mail_uid`` in the data is
unchanged, so the Message-ID stays the same.
"""

from __future__ import annotations

import builtins
import contextlib
import re
from typing import Any

from .. import _ops_dlq
from ..connection import SyncClient
from ..errors import DeadLetterQueueError
from ..job import JobBase
from ..queue import AsyncQueue, Queue

_REPLAY_SUFFIX = re.compile(r"^(.*)-r(\d+)$")

#: The generic entry ``kind`` in the email worker's words.
_KINDS = {"attempts-exhausted": "retry-exhausted", "unrecoverable": "fail",
          "timeout": "timeout", "stalled": "stalled", "damaged": "fail",
          "backoff-error": "fail"}


def dlq_name(queue_name: str) -> str:
    """The dead-letter queue's default name for ``queue_name``."""
    return f"{queue_name}-dlq"


async def ensure_async(queue: AsyncQueue) -> str:
    """Make ``<queue>-dlq`` the queue's dead-letter queue unless it has one;
    returns the dead-letter queue's name."""
    current = await queue.get_dead_letter_queue()
    if current is not None:
        return current
    await queue.set_dead_letter_queue(dlq_name(queue.name))
    return dlq_name(queue.name)


def next_replay_id(job_id: str) -> str:
    """``mail-x`` -> ``mail-x-r1``; ``mail-x-r1`` -> ``mail-x-r2``."""
    match = _REPLAY_SUFFIX.match(job_id)
    if match:
        return f"{match.group(1)}-r{int(match.group(2)) + 1}"
    return f"{job_id}-r1"


def mail_entry(job: JobBase) -> dict[str, Any]:
    """An entry (a job of the dead-letter queue) as the mail view shows it: the
    entry's data plus ``id`` (its id in the dead-letter queue), ``name`` (the
    mail job's name), ``reason``, ``kind`` (``fail``, ``retry-exhausted``,
    ``timeout``, ``stalled``) and ``failed_at`` in epoch seconds."""
    data: dict[str, Any] = dict(job.data) if isinstance(job.data, dict) else {}
    failed_at = data.get("failed_at")
    return {**data, "id": job.id, "name": job.name,
            "reason": data.get("failed_reason", ""),
            "kind": _KINDS.get(str(data.get("kind")), str(data.get("kind") or "fail")),
            "failed_at": failed_at / 1000 if isinstance(failed_at, int | float) else None}


class DeadLetters:
    """The dead letters of a mail queue (synchronous API, used by the CLI).

    ``DeadLetters("email", connection=url)`` or ``DeadLetters.of(queue)``.
    A queue without a dead-letter queue has no entries.
    """

    def __init__(self, queue_name: str, *, connection: str | SyncClient | None = None,
                 prefix: str = "bull") -> None:
        self.queue = Queue(queue_name, connection=connection, prefix=prefix)

    @classmethod
    def of(cls, queue: Queue) -> DeadLetters:
        """The dead letters of ``queue`` (shares its connection)."""
        return cls(queue.name, connection=queue.client, prefix=queue.prefix)

    def _jobs(self, limit: int | None = None, job_id: str | None = None
              ) -> builtins.list[JobBase]:
        end = -1 if limit is None else max(limit, 1) - 1
        try:
            return builtins.list(self.queue.get_dead_letters(0, end, job_id=job_id))
        except DeadLetterQueueError:  # no dead-letter queue: nothing dead-lettered
            return []

    def count(self) -> int:
        """How many mails are dead-lettered."""
        return len(self._jobs())

    def list(self, limit: int = 100) -> builtins.list[dict[str, Any]]:
        """Entries, oldest first (see :func:`mail_entry`)."""
        return [mail_entry(job) for job in self._jobs(limit)]

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The entry of the failed job ``job_id``, or ``None``."""
        found = self._jobs(1, job_id)
        return mail_entry(found[0]) if found else None

    def replay(self, job_id: str | None = None, *, limit: int = 1000) -> builtins.list[str]:
        """Add dead-lettered mail back to the queue (the entry of one failed job,
        or all up to ``limit``) with fresh attempts; returns the new job ids
        (``<job id>-r<n>``). Replayed entries leave the dead-letter queue in the
        same step."""
        try:
            wanted = _ops_dlq.filters(job_id=job_id, limit=limit)
            plan = _ops_dlq.replay_plan(
                self.queue._core.keys, self.queue._core.clock, wanted, None,
                new_id=lambda entry: next_replay_id(str(entry.data.get("job_id"))))
            return self.queue._run(plan)
        except DeadLetterQueueError:
            return []

    def remove(self, job_id: str) -> bool:
        """Drop the entry of the failed job ``job_id`` without replaying it."""
        try:
            return self.queue.purge_dead_letters(job_id=job_id) > 0
        except DeadLetterQueueError:
            return False

    def purge(self) -> None:
        """Drop every entry."""
        with contextlib.suppress(DeadLetterQueueError):
            self.queue.purge_dead_letters()

    def close(self) -> None:
        """Release the connection (and the client, if created here)."""
        self.queue.close()

    def __enter__(self) -> DeadLetters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
