"""pyqueue's exceptions: one tree, importable from ``pyqueue`` itself.

::

    PyQueueError                      root of everything pyqueue raises
    ├── ConfigurationError(ValueError)        bad argument or option, raised before any write
    │   ├── InvalidQueueNameError
    │   ├── DeadLetterQueueError              a dead-letter queue that cannot be (the queue
    │   │                                     itself, another prefix or slot, not a DLQ)
    │   ├── InvalidJobIdError
    │   ├── InvalidJobOptionsError
    │   ├── InvalidJobDataError(ConfigurationError, TypeError)
    │   └── PayloadTooLargeError
    ├── RedisError                            Redis failed or refused a command
    │   ├── RedisConnectionError(ConnectionError)  transient: unreachable, dropped, timed out
    │   │   ├── EmbeddedRedisUnavailable      no redis-server binary to start
    │   │   └── RedisBusyError                transient: BUSY, LOADING, MASTERDOWN, TRYAGAIN,
    │   │                                     CLUSTERDOWN; try again later
    │   ├── RedisStateError                   Redis refused a write (OOM, READONLY, NOPERM,
    │   │                                     MISCONF)
    │   ├── RedisDataError                    WRONGTYPE: a queue key holds the wrong type
    │   └── RedisReplyError                   any other error reply, with Redis's message
    ├── JobError                              an operation on one job failed
    │   ├── JobNotFoundError                  the job hash does not exist
    │   ├── JobLockError                      the caller's lock is missing or not its own
    │   ├── JobStateError                     the job is not in the state the operation needs
    │   └── JobFailedError                    wait_until_finished(): the job ended in failed
    ├── QueueBusyError                        obliterate() while jobs are active
    └── ProcessingSignal                      control signals raised by processors
        ├── UnrecoverableError                fail now, no retry
        ├── DelayedError                      the job moved itself to delayed
        ├── RateLimitError                    back to wait; the whole queue waits
        ├── JobTimeoutError                   the attempt ran past its ``timeout``
        ├── JobCancelledError                 the job was cancelled (Queue.cancel_job)
        └── WaitingChildrenError              the job now waits for its children

Every error reply from Redis becomes one of the ``RedisError`` classes (never
a redis-py exception); ``code`` holds Redis's error code (``"WRONGTYPE"``,
``"BUSY"``, ...) when there was one. ``add_bulk`` sets ``acknowledged_ids``
on the error it raises (see :class:`RedisError`).

Argument errors subclass :class:`ValueError` (or :class:`TypeError` for
data of the wrong type), so ``except ValueError`` works as Python users
expect, and every message names the option and the offending value.
"""

from __future__ import annotations

import builtins

__all__ = [
    "ConfigurationError",
    "DeadLetterQueueError",
    "DelayedError",
    "EmbeddedRedisUnavailable",
    "InvalidJobDataError",
    "InvalidJobIdError",
    "InvalidJobOptionsError",
    "InvalidQueueNameError",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobLockError",
    "JobNotFoundError",
    "JobStateError",
    "JobTimeoutError",
    "PayloadTooLargeError",
    "ProcessingSignal",
    "PyQueueError",
    "QueueBusyError",
    "RateLimitError",
    "RedisBusyError",
    "RedisConnectionError",
    "RedisDataError",
    "RedisError",
    "RedisReplyError",
    "RedisStateError",
    "UnrecoverableError",
    "WaitingChildrenError",
]


class PyQueueError(Exception):
    """Root of every exception pyqueue raises."""


class ConfigurationError(PyQueueError, builtins.ValueError):
    """A bad argument, option or setting; raised before anything is written."""


class InvalidQueueNameError(ConfigurationError):
    """A queue name that is empty, not a string, or contains ``:``."""


class DeadLetterQueueError(ConfigurationError):
    """A dead-letter queue setting that cannot work (the queue itself, a queue in
    another prefix or cluster slot), or a dead-letter operation on a queue that
    neither has a dead-letter queue nor is one."""


class InvalidJobIdError(ConfigurationError):
    """A custom ``job_id`` that is empty, all digits or contains ``:``."""


class InvalidJobOptionsError(ConfigurationError):
    """A job option with an unknown name, a wrong type or an out-of-range value."""


class InvalidJobDataError(ConfigurationError, builtins.TypeError):
    """Job data (or a return value) that cannot be encoded as JSON."""


class PayloadTooLargeError(ConfigurationError):
    """Encoded job data larger than the queue's ``max_payload_bytes``."""


class RedisError(PyQueueError):
    """Redis failed or refused a command.

    ``code`` is Redis's error code (the reply's first word, such as
    ``"WRONGTYPE"``) or ``None`` when Redis sent no reply (a connection
    problem). ``acknowledged_ids`` is set only by ``add_bulk``: the ids of the
    jobs whose chunk Redis confirmed before the failure. The chunk that
    failed, and any chunk whose reply never arrived, may or may not have been
    applied; give every job a ``job_id`` to make a retry safe.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.acknowledged_ids: list[str] | None = None


class RedisConnectionError(RedisError, builtins.ConnectionError):
    """Redis could not be reached, the connection dropped, or a command timed
    out: transient, try again later (the worker does, with backoff)."""


class EmbeddedRedisUnavailable(RedisConnectionError):
    """No ``redis-server`` binary could be found to start an embedded server."""


class RedisBusyError(RedisConnectionError):
    """Redis is up but cannot serve now: a long script runs (``BUSY``), it loads
    its dataset (``LOADING``), a replica lost its primary (``MASTERDOWN``), a
    cluster is resharding or down (``TRYAGAIN``, ``CLUSTERDOWN``). Transient."""


class RedisStateError(RedisError):
    """Redis refused a write: out of memory, a read-only replica, a missing permission."""


class RedisDataError(RedisError):
    """A key pyqueue uses holds a value of the wrong type (``WRONGTYPE``):
    something other than pyqueue or BullMQ wrote it. The operation is refused;
    retrying does not help until the key is repaired."""


class RedisReplyError(RedisError):
    """Any other error reply from Redis; the message is Redis's."""


class JobError(PyQueueError):
    """An operation on a single job failed."""

    def __init__(self, message: str, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class JobNotFoundError(JobError):
    """The job does not exist (its hash is missing)."""


class JobLockError(JobError):
    """The worker's lock on the job is missing or belongs to someone else.

    Raised when a worker that lost its lock (it stalled, or its lock expired)
    tries to change the job: the write is refused inside Redis (fencing).
    """


class JobStateError(JobError):
    """The job is not in the state the operation requires."""


class JobFailedError(JobError):
    """Raised by ``Job.wait_until_finished()`` when the job ended in ``failed``."""

    def __init__(self, message: str, job_id: str | None = None,
                 failed_reason: str | None = None) -> None:
        super().__init__(message, job_id)
        self.failed_reason = failed_reason


class QueueBusyError(PyQueueError):
    """The queue has active jobs and the operation was not forced."""


class ProcessingSignal(PyQueueError):
    """Base of the exceptions a processor raises to steer what happens to its job."""


class UnrecoverableError(ProcessingSignal):
    """Raise from a processor to fail the job at once, without further attempts."""


class DelayedError(ProcessingSignal):
    """Raise after ``job.move_to_delayed(until)``: the attempt ends without failing."""


class RateLimitError(ProcessingSignal):
    """Raise after ``worker.rate_limit(seconds)``: the job goes back to wait and the
    whole queue pauses for that long; no attempt is used up."""


class JobCancelledError(ProcessingSignal):
    """The job was cancelled with ``Queue.cancel_job``; it fails without retry
    (or is removed), with the cancellation reason as its failed reason."""


class JobTimeoutError(ProcessingSignal):
    """The attempt ran longer than the job's ``timeout``; it fails and retries as usual."""


class WaitingChildrenError(ProcessingSignal):
    """Raise after ``job.move_to_waiting_children()`` returned ``True``: the attempt
    ends without failing, the job waits in ``waiting-children`` (holding no worker
    slot) and runs again once its children have finished."""
