"""Retry backoff: how long a failed attempt waits before the next one.

Built-in types follow BullMQ: ``fixed`` waits ``delay``; ``exponential`` waits
``delay * 2 ** (attempts_made - 1)``, where ``attempts_made`` counts the
attempt that just failed. ``jitter`` ``j`` (0..1) draws the wait uniformly
from ``[d * (1 - j), d)``, spreading retries of jobs that failed together.

Custom strategies: register a function under a name with
:func:`register_backoff_strategy` (in the producer, so ``add`` accepts the
name, and in the worker, which calls it), or pass ``backoff_strategy=`` to a
``Worker`` to handle BullMQ's ``"custom"`` type.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from ._duration import duration_ms
from .errors import InvalidJobOptionsError

#: ``(attempts_made, error, job) -> seconds`` (``None`` or negative: no retry).
BackoffStrategy = Callable[[int, BaseException, Any], "float | timedelta | None"]

BUILTIN_TYPES = ("fixed", "exponential")
_registry: dict[str, BackoffStrategy] = {}


def register_backoff_strategy(name: str, strategy: BackoffStrategy) -> None:
    """Make ``backoff={"type": name, ...}`` valid and computed by ``strategy``."""
    if not isinstance(name, str) or not name or name in BUILTIN_TYPES:
        raise InvalidJobOptionsError(
            f"backoff strategy name must be a new non-empty str, got {name!r}"
        )
    if not callable(strategy):
        raise InvalidJobOptionsError(f"backoff strategy {name!r} must be callable")
    _registry[name] = strategy


def registered(name: str) -> BackoffStrategy | None:
    """The strategy registered under ``name``, if any."""
    return _registry.get(name)


def encode(value: object) -> dict[str, Any]:
    """Validate a ``backoff`` option and encode it as BullMQ stores it (ms)."""
    if isinstance(value, int | float | timedelta) and not isinstance(value, bool):
        return {"type": "fixed", "delay": duration_ms(value, "backoff")}
    if not isinstance(value, Mapping):
        raise InvalidJobOptionsError(
            f"backoff must be seconds or {{'type', 'delay', 'jitter'}}, got {value!r}"
        )
    unknown = set(value) - {"type", "delay", "jitter"}
    if unknown:
        raise InvalidJobOptionsError(f"backoff has unknown keys {sorted(unknown)}")
    kind = value.get("type", "fixed")
    if not isinstance(kind, str) or (
        kind not in BUILTIN_TYPES and kind != "custom" and kind not in _registry
    ):
        raise InvalidJobOptionsError(
            f"backoff.type must be 'fixed', 'exponential', 'custom' or a name registered "
            f"with register_backoff_strategy(), got {kind!r}"
        )
    out: dict[str, Any] = {"type": kind, "delay": duration_ms(value.get("delay", 0),
                                                            "backoff.delay")}
    jitter = value.get("jitter")
    if jitter is not None:
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) \
                or not 0 <= jitter <= 1:
            raise InvalidJobOptionsError(f"backoff.jitter must be within 0..1, got {jitter!r}")
        if jitter:
            out["jitter"] = jitter
    return out


def delay_ms(spec: Mapping[str, Any] | int | None, attempts_made: int,
             error: BaseException, job: Any,
             custom: BackoffStrategy | None = None,
             rng: random.Random | None = None) -> int | None:
    """Milliseconds to wait before the next attempt, from a stored backoff spec.

    ``spec`` is the job's stored ``opts.backoff`` (a number means fixed ms).
    Returns ``None`` when a custom strategy declines to retry.
    """
    if spec is None:
        return 0
    if isinstance(spec, int | float):
        return max(int(spec), 0)
    kind = spec.get("type", "fixed")
    base = float(spec.get("delay") or 0)
    if kind == "fixed":
        wait = base
    elif kind == "exponential":
        wait = round(2 ** (attempts_made - 1) * base)
    else:
        strategy = _registry.get(kind) or custom
        if strategy is None:
            return 0
        seconds = strategy(attempts_made, error, job)
        if seconds is None:
            return None
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        if seconds < 0:
            return None
        wait = float(seconds) * 1000
    jitter = float(spec.get("jitter") or 0)
    if jitter > 0 and wait > 0:
        wait = (rng or random).uniform(wait * (1 - jitter), wait)
    return max(int(wait), 0)
