"""What pyqueue's scripts answer: their error codes as pyqueue's exceptions
(:func:`check`, the one place that maps them), and the decoding of hash and
fetch replies. Re-exported by :mod:`._scripts`.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    InvalidJobIdError,
    JobLockError,
    JobNotFoundError,
    JobStateError,
    PyQueueError,
    QueueBusyError,
)

E_JOB_MISSING = -1
E_LOCK_MISSING = -2
E_NOT_ACTIVE = -3
E_QUEUE_BUSY = -4
E_LOCK_MISMATCH = -6
E_WRONG_STATE = -7
E_JOB_CORRUPT = -8
#: Flow codes (lua/includes/flow.lua).
E_PARENT_MISSING = -5
E_FAILED_CHILDREN = -9
E_PENDING_DEPS = -10
E_FLOW_ID_TAKEN = -11
#: Codes by which moveToFinished refuses to complete a parent (its attempt fails).
FLOW_REFUSALS = frozenset({E_FAILED_CHILDREN, E_PENDING_DEPS})


#: What each error code raises: the exception class and its message, where
#: ``{op}`` is the operation and ``{where}`` the job (or "queue").
_RAISES: dict[int, tuple[type[PyQueueError], str]] = {
    E_JOB_MISSING: (JobNotFoundError, "{op}: {where} does not exist"),
    E_LOCK_MISSING: (JobLockError, "{op}: the lock on {where} is missing (it expired or "
                                   "the job was moved back as stalled)"),
    E_LOCK_MISMATCH: (JobLockError, "{op}: the lock on {where} is held by another worker"),
    E_NOT_ACTIVE: (JobStateError, "{op}: {where} is not active"),
    E_WRONG_STATE: (JobStateError, "{op}: {where} is not in the state this operation needs"),
    E_JOB_CORRUPT: (JobStateError, "{op}: {where} is damaged (a field or its key is not what "
                                   "pyqueue wrote); it was moved to failed, see its failed "
                                   "reason"),
    E_PENDING_DEPS: (JobStateError, "{op}: {where} has children that have not finished"),
    E_FAILED_CHILDREN: (JobStateError, "{op}: {where} has a child that failed with "
                                       "fail_parent_on_failure"),
    E_PARENT_MISSING: (JobNotFoundError, "{op}: the parent job of {where} does not exist"),
    E_FLOW_ID_TAKEN: (InvalidJobIdError, "{op}: a job below the root of the flow has a "
                                         "custom job_id that is taken already; nothing was "
                                         "added"),
}


def check(reply: Any, *, op: str, job_id: str | None = None) -> Any:
    """Raise the exception for a negative integer reply, else return it."""
    if not isinstance(reply, int) or reply >= 0:
        return reply
    if reply == E_QUEUE_BUSY:
        raise QueueBusyError(f"{op}: the queue has active jobs; pass force=True to proceed")
    raises = _RAISES.get(reply)
    if raises is None:
        raise PyQueueError(f"{op}: script error code {reply}")
    cls, message = raises
    where = f"job {job_id!r}" if job_id is not None else "queue"
    raise cls(message.format(op=op, where=where), job_id)


def text(value: Any) -> str:
    """A Redis reply value as ``str`` (clients may or may not decode)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def pairs_to_dict(flat: list[Any] | dict[Any, Any]) -> dict[str, str]:
    """``HGETALL`` as a ``dict[str, str]`` from a flat array or a mapping."""
    if isinstance(flat, dict):
        return {text(k): text(v) for k, v in flat.items()}
    if flat and isinstance(flat[0], str):  # decoded by the connection already
        values = iter(flat)  # hash fields and values are all bulk strings
        return dict(zip(values, values, strict=True))
    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


FETCH_OK, FETCH_RATE_LIMITED, FETCH_PAUSED, FETCH_MAX_CONCURRENCY = 0, 1, 2, 3


def decode_fetch(reply: list[Any]) -> tuple[int, int, list[tuple[str, str, dict[str, str]]]]:
    """Decode a fetch reply into ``(status, number, [(id, token, fields)])``."""
    if not reply:
        return FETCH_OK, 0, []
    status, number = int(reply[0]), int(reply[1])
    if len(reply) > 2 and isinstance(reply[2][0], str):  # decoded by the connection
        return status, number, [(j[0], j[1], pairs_to_dict(j[2])) for j in reply[2:]]
    jobs = [(text(j[0]), text(j[1]), pairs_to_dict(j[2])) for j in reply[2:]]
    return status, number, jobs
