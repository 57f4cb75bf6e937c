"""pyqueue: a BullMQ-compatible job queue for Python on Redis.

Producers add jobs with :class:`Queue` (sync) or :class:`AsyncQueue`;
:class:`Worker` processes them; :class:`QueueEvents` follows what happens.
Queues are stored in BullMQ v6's Redis format, so BullMQ (Node) producers,
workers and Bull Board work on the same queues.
"""

from __future__ import annotations

import logging as _logging

from .backoff import register_backoff_strategy
from .errors import (
    ConfigurationError,
    DeadLetterQueueError,
    DelayedError,
    EmbeddedRedisUnavailable,
    InvalidJobDataError,
    InvalidJobIdError,
    InvalidJobOptionsError,
    InvalidQueueNameError,
    JobCancelledError,
    JobError,
    JobFailedError,
    JobLockError,
    JobNotFoundError,
    JobStateError,
    JobTimeoutError,
    PayloadTooLargeError,
    ProcessingSignal,
    PyQueueError,
    QueueBusyError,
    RateLimitError,
    RedisBusyError,
    RedisConnectionError,
    RedisDataError,
    RedisError,
    RedisReplyError,
    RedisStateError,
    UnrecoverableError,
    WaitingChildrenError,
)
from .events import Event, QueueEvents
from .flow import AsyncFlowProducer, FlowNode, FlowProducer
from .job import AsyncJob, Job
from .options import AddOptions, BulkJob, JobOptions, RepeatOptions
from .queue import AsyncQueue, Queue
from .states import JobState
from .worker import Worker, WorkerHooks

__version__ = "0.1.0"

# A library logs, the application decides where: pyqueue.* records go nowhere
# until logging is configured (then they propagate to the root handlers).
_logging.getLogger("pyqueue").addHandler(_logging.NullHandler())

__all__ = [
    "AddOptions",
    "AsyncFlowProducer",
    "AsyncJob",
    "AsyncQueue",
    "BulkJob",
    "ConfigurationError",
    "DeadLetterQueueError",
    "DelayedError",
    "EmbeddedRedisUnavailable",
    "Event",
    "FlowNode",
    "FlowProducer",
    "InvalidJobDataError",
    "InvalidJobIdError",
    "InvalidJobOptionsError",
    "InvalidQueueNameError",
    "Job",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobLockError",
    "JobNotFoundError",
    "JobOptions",
    "JobState",
    "JobStateError",
    "JobTimeoutError",
    "PayloadTooLargeError",
    "ProcessingSignal",
    "PyQueueError",
    "Queue",
    "QueueBusyError",
    "QueueEvents",
    "RateLimitError",
    "RedisBusyError",
    "RedisConnectionError",
    "RedisDataError",
    "RedisError",
    "RedisReplyError",
    "RedisStateError",
    "RepeatOptions",
    "UnrecoverableError",
    "WaitingChildrenError",
    "Worker",
    "WorkerHooks",
    "__version__",
    "register_backoff_strategy",
]
