"""Assertions that read well in tests: ``assert_enqueued(queue, name=..., data=...)``.

They read the real queue (any producer's jobs: your code's, a relay's, a
BullMQ producer's) and fail with a message listing what the queue does hold.
With an ``AsyncQueue`` they return a coroutine: ``await assert_enqueued(...)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, overload

from .._async_queue import AsyncQueue
from ..job import JobBase
from ..queue import Queue

__all__ = ["PENDING_STATES", "assert_enqueued", "assert_not_enqueued"]

#: "Enqueued": added and not taken by a worker yet.
PENDING_STATES = ("waiting", "prioritized", "delayed", "paused", "waiting-children")
_ANY: Any = object()
_SHOWN = 20


def _matches(job: JobBase, name: str | None, data: Any,
             where: Callable[[Any], bool] | None) -> bool:
    return ((name is None or job.name == name) and (data is _ANY or job.data == data)
            and (where is None or bool(where(job))))


def _describe(queue_name: str, states: Sequence[str], name: str | None, data: Any,
              where: Callable[[Any], bool] | None) -> str:
    parts = [f"name {name!r}" if name is not None else "",
             f"data {data!r}" if data is not _ANY else "",
             "the where= condition" if where is not None else ""]
    wanted = ", ".join(p for p in parts if p)
    return f"{' with ' + wanted if wanted else ''} in {'/'.join(states)} of queue {queue_name!r}"


def _held(jobs: Sequence[JobBase]) -> str:
    if not jobs:
        return "the queue holds no job in those states"
    lines = [f"  - id {job.id!r} name {job.name!r} data {job.data!r}" for job in jobs[:_SHOWN]]
    more = f"\n  ... and {len(jobs) - _SHOWN} more" if len(jobs) > _SHOWN else ""
    return "the queue holds:\n" + "\n".join(lines) + more


def _check(queue_name: str, jobs: Sequence[JobBase], states: Sequence[str], name: str | None,
           data: Any, where: Callable[[Any], bool] | None, count: int | None,
           present: bool) -> list[JobBase]:
    found = [job for job in jobs if _matches(job, name, data, where)]
    what = _describe(queue_name, states, name, data, where)
    if not present and found:
        raise AssertionError(f"expected no job{what}, found {len(found)}: "
                             f"{[job.id for job in found]}")
    if present and count is not None and len(found) != count:
        raise AssertionError(f"expected {count} job(s){what}, found {len(found)}; "
                             f"{_held(jobs)}")
    if present and count is None and not found:
        raise AssertionError(f"expected a job{what}; {_held(jobs)}")
    return found


@overload
def assert_enqueued(queue: Queue, name: str | None = None, data: Any = _ANY, *,
                    count: int | None = None, where: Callable[[Any], bool] | None = None,
                    states: Iterable[str] = PENDING_STATES) -> list[JobBase]: ...
@overload
def assert_enqueued(queue: AsyncQueue, name: str | None = None, data: Any = _ANY, *,
                    count: int | None = None, where: Callable[[Any], bool] | None = None,
                    states: Iterable[str] = PENDING_STATES) -> Awaitable[list[JobBase]]: ...
def assert_enqueued(queue: Queue | AsyncQueue, name: str | None = None, data: Any = _ANY, *,
                    count: int | None = None, where: Callable[[Any], bool] | None = None,
                    states: Iterable[str] = PENDING_STATES
                    ) -> list[JobBase] | Awaitable[list[JobBase]]:
    """Assert that ``queue`` holds a job (``count``: exactly that many) named
    ``name`` whose ``data`` equals ``data`` (each left out: any), for which
    ``where(job)`` is true, in ``states`` (default: added and not yet taken
    by a worker). Returns the matching jobs, oldest first; raises
    ``AssertionError`` listing what the queue holds."""
    wanted = tuple(states)
    if isinstance(queue, AsyncQueue):
        return _async(queue, wanted, name, data, where, count, True)
    jobs: list[JobBase] = list(queue.get_jobs(wanted, asc=True))
    return _check(queue.name, jobs, wanted, name, data, where, count, True)


@overload
def assert_not_enqueued(queue: Queue, name: str | None = None, data: Any = _ANY, *,
                        where: Callable[[Any], bool] | None = None,
                        states: Iterable[str] = PENDING_STATES) -> None: ...
@overload
def assert_not_enqueued(queue: AsyncQueue, name: str | None = None, data: Any = _ANY, *,
                        where: Callable[[Any], bool] | None = None,
                        states: Iterable[str] = PENDING_STATES) -> Awaitable[None]: ...
def assert_not_enqueued(queue: Queue | AsyncQueue, name: str | None = None,
                        data: Any = _ANY, *, where: Callable[[Any], bool] | None = None,
                        states: Iterable[str] = PENDING_STATES) -> Awaitable[None] | None:
    """Assert that ``queue`` holds no such job (the arguments of :func:`assert_enqueued`)."""
    wanted = tuple(states)
    if isinstance(queue, AsyncQueue):
        return _async_none(queue, wanted, name, data, where)
    jobs: list[JobBase] = list(queue.get_jobs(wanted, asc=True))
    _check(queue.name, jobs, wanted, name, data, where, None, False)
    return None


async def _async(queue: AsyncQueue, states: tuple[str, ...], name: str | None, data: Any,
                 where: Callable[[Any], bool] | None, count: int | None,
                 present: bool) -> list[JobBase]:
    jobs: list[JobBase] = list(await queue.get_jobs(states, asc=True))
    return _check(queue.name, jobs, states, name, data, where, count, present)


async def _async_none(queue: AsyncQueue, states: tuple[str, ...], name: str | None, data: Any,
                      where: Callable[[Any], bool] | None) -> None:
    await _async(queue, states, name, data, where, None, False)
