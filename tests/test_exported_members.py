"""The public names of ``pyqueue``: pinned, so adding or losing one is deliberate."""

from __future__ import annotations

import pyqueue

EXPORTED = [
    "AddOptions", "AsyncJob", "AsyncQueue", "BulkJob", "ConfigurationError",
    "DeadLetterQueueError", "DelayedError",
    "EmbeddedRedisUnavailable", "Event", "InvalidJobDataError", "InvalidJobIdError",
    "InvalidJobOptionsError", "InvalidQueueNameError", "Job", "JobCancelledError", "JobError",
    "JobFailedError", "JobLockError", "JobNotFoundError", "JobOptions", "JobState",
    "JobStateError", "JobTimeoutError", "PayloadTooLargeError", "ProcessingSignal",
    "PyQueueError", "Queue", "QueueBusyError", "QueueEvents", "RateLimitError",
    "RedisBusyError", "RedisConnectionError", "RedisDataError", "RedisError",
    "RedisReplyError", "RedisStateError", "RepeatOptions", "UnrecoverableError", "Worker",
    "WorkerHooks",
    # flows
    "AsyncFlowProducer", "FlowNode", "FlowProducer", "WaitingChildrenError",
    "__version__", "register_backoff_strategy",
]


def test_all_is_pinned() -> None:
    # Adding a public name is a deliberate act: update EXPORTED with it.
    assert sorted(pyqueue.__all__) == sorted(EXPORTED)


def test_every_public_attribute_is_in_all() -> None:
    # As httpx's tests/test_exported_members.py: nothing public outside __all__
    # (submodules aside), and every name in __all__ exists.
    public = {name for name in dir(pyqueue) if not name.startswith("_")
              and not isinstance(getattr(pyqueue, name), type(pyqueue))}
    public -= {"annotations"}  # from __future__
    assert public == set(pyqueue.__all__) - {"__version__"}


def test_exported_members_come_from_their_module() -> None:
    for name in pyqueue.__all__:
        member = getattr(pyqueue, name)
        if name == "__version__":
            assert isinstance(member, str)
            continue
        assert member.__module__.startswith("pyqueue."), name
