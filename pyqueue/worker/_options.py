"""Validation of the ``Worker`` constructor's options into one typed, checked record."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import backoff as _backoff
from .._procpool import import_path
from ..errors import InvalidJobOptionsError
from ..options import Duration, Retention, duration_ms, parse_retention

EXECUTIONS = ("thread", "process")


@dataclass(frozen=True)
class WorkerOptions:
    """A worker's settings, validated (durations in ms unless named in seconds)."""

    concurrency: int
    limiter: tuple[int, int] | None  # (max jobs, window ms)
    lock_ms: int
    stalled_ms: int
    max_stalled_count: int
    keep_complete: Retention
    keep_fail: Retention
    backoff_strategy: _backoff.BackoffStrategy | None
    shutdown_grace: float  # seconds
    drain_delay: float  # seconds
    execution: str
    #: BullMQ metrics: the data points (minutes) to keep; None = no metrics.
    metrics_points: int | None = None


#: BullMQ's ``MetricsTime.ONE_WEEK``: the data points kept when none are named.
DEFAULT_METRICS_POINTS = 60 * 24 * 7


def _metrics(metrics: Mapping[str, Any] | None) -> int | None:
    """``metrics={"max_data_points": n}`` as the number of points (None: off)."""
    if metrics is None:
        return None
    if not isinstance(metrics, Mapping) or set(metrics) - {"max_data_points"}:
        raise InvalidJobOptionsError(
            f"metrics must be {{'max_data_points': n}}, got {metrics!r}")
    return _positive_int(metrics.get("max_data_points", DEFAULT_METRICS_POINTS),
                         "metrics.max_data_points", 1)


def _positive_int(value: object, option: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidJobOptionsError(f"{option} must be an int >= {minimum}, got {value!r}")
    return value


def parse_limiter(limiter: Mapping[str, Any] | None) -> tuple[int, int] | None:
    if limiter is None:
        return None
    if not isinstance(limiter, Mapping) or set(limiter) - {"max", "duration"} \
            or "max" not in limiter or "duration" not in limiter:
        raise InvalidJobOptionsError(
            f"limiter must be {{'max': n, 'duration': seconds}}, got {limiter!r}"
        )
    lmax = _positive_int(limiter["max"], "limiter.max", 1)
    return lmax, duration_ms(limiter["duration"], "limiter.duration", allow_zero=False)


def _retention(value: bool | int | Mapping[str, Any] | None, option: str) -> Retention:
    return parse_retention(value, option)[1] if value is not None else Retention()


def validate_options(
    *,
    concurrency: int,
    limiter: Mapping[str, Any] | None,
    lock_duration: Duration,
    stalled_interval: Duration,
    max_stalled_count: int,
    remove_on_complete: bool | int | Mapping[str, Any] | None,
    remove_on_fail: bool | int | Mapping[str, Any] | None,
    backoff_strategy: _backoff.BackoffStrategy | None,
    shutdown_grace: Duration,
    drain_delay: Duration,
    execution: str,
    metrics: Mapping[str, Any] | None = None,
) -> WorkerOptions:
    """Check every option (``InvalidJobOptionsError`` naming the bad one)."""
    concurrency = _positive_int(concurrency, "concurrency", 1)
    limits = parse_limiter(limiter)
    lock_ms = duration_ms(lock_duration, "lock_duration", allow_zero=False)
    stalled_ms = duration_ms(stalled_interval, "stalled_interval", allow_zero=False)
    max_stalled_count = _positive_int(max_stalled_count, "max_stalled_count", 0)
    keep_complete = _retention(remove_on_complete, "remove_on_complete")
    keep_fail = _retention(remove_on_fail, "remove_on_fail")
    if backoff_strategy is not None and not callable(backoff_strategy):
        raise InvalidJobOptionsError("backoff_strategy must be callable")
    grace = duration_ms(shutdown_grace, "shutdown_grace") / 1000
    drain = max(duration_ms(drain_delay, "drain_delay", allow_zero=False), 10) / 1000
    if execution not in EXECUTIONS:
        raise InvalidJobOptionsError(
            f"execution must be 'thread' or 'process', got {execution!r}")
    return WorkerOptions(concurrency, limits, lock_ms, stalled_ms, max_stalled_count,
                         keep_complete, keep_fail, backoff_strategy, grace, drain, execution,
                         _metrics(metrics))


def check_target(target: Callable[..., Any], execution: str) -> bool:
    """Whether the processor is ``async def``; with ``execution="process"`` it must
    be a ``def`` that imports by name (checked now, not at the first job)."""
    is_async = inspect.iscoroutinefunction(target)
    if execution == "process":
        if is_async:
            raise InvalidJobOptionsError(
                "execution='process' runs def processors; an async processor runs on "
                "the event loop")
        import_path(target)
    return is_async
