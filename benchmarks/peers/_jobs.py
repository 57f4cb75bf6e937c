"""Job functions that a peer must import by module path (RQ refuses ``__main__``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Set by the adapter: called at the first line of the job.
on_start: Callable[[], None] | None = None


def noop(data: dict[str, Any]) -> None:
    """The no-op job; reports its start to the adapter."""
    hook = on_start
    if hook is not None:
        hook()
