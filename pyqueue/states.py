"""Job states, in BullMQ's words."""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    """A job's state. Compares equal to the plain string (``JobState.WAITING == "waiting"``)."""

    WAITING = "waiting"
    PRIORITIZED = "prioritized"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    WAITING_CHILDREN = "waiting-children"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value
