"""The pure decision of what happens to a job after its processor ran: complete, retry, delay, fail
or hand back.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .. import backoff as _backoff
from ..errors import (
    DelayedError,
    JobCancelledError,
    JobTimeoutError,
    RateLimitError,
    UnrecoverableError,
    WaitingChildrenError,
)

#: completed: store the result. retry: back to wait/delayed after ``delay_ms``.
#: delayed: the job moved itself to delayed (DelayedError) or to waiting-children
#: (WaitingChildrenError). rate_limited: back
#: to the front of wait, attempt not counted. failed: fail (``exhausted`` says
#: whether the attempts ran out). cancelled: fail (or remove) without retry.
OutcomeKind = Literal["completed", "retry", "delayed", "rate_limited", "failed", "cancelled"]


class JobView(Protocol):
    """What the decision reads from a job."""

    attempts_made: int
    cancel_reason: str | None

    @property
    def attempts(self) -> int: ...
    @property
    def opts(self) -> Mapping[str, Any]: ...
    @property
    def deferred_failure(self) -> Any: ...


@dataclass(frozen=True)
class Outcome:
    """What to do with a job whose attempt ended."""

    kind: OutcomeKind
    #: retry: milliseconds until the next attempt (0: back to wait at once).
    delay_ms: int = 0
    #: failed: whether the attempts ran out (BullMQ's ``retries-exhausted``).
    exhausted: bool = False
    #: failed: the custom backoff strategy raised this (it is reported).
    strategy_error: BaseException | None = None


COMPLETED = Outcome("completed")
DELAYED = Outcome("delayed")
RATE_LIMITED = Outcome("rate_limited")
CANCELLED = Outcome("cancelled")


def decide(job: JobView, error: BaseException | None, *,
           strategy: _backoff.BackoffStrategy | None = None,
           final: bool = False, rng: random.Random | None = None) -> Outcome:
    """The outcome of an attempt of ``job`` that raised ``error`` (``None``: it returned).

    ``final`` fails the job without retry (a corrupt or deferred-failed job).
    ``attempts_made`` does not count the attempt that just ended yet.
    """
    if error is None:
        return CANCELLED if job.cancel_reason is not None else COMPLETED
    if isinstance(error, DelayedError | WaitingChildrenError):
        return DELAYED
    if isinstance(error, RateLimitError):
        return RATE_LIMITED
    if isinstance(error, UnrecoverableError):
        final = True
    elif isinstance(error, JobCancelledError) or job.cancel_reason is not None:
        return CANCELLED
    return _failure(job, error, strategy, final, rng)


def _failure(job: JobView, error: BaseException, strategy: _backoff.BackoffStrategy | None,
             final: bool, rng: random.Random | None) -> Outcome:
    made = job.attempts_made + 1
    if not final and made < job.attempts:
        try:
            delay = _backoff.delay_ms(job.opts.get("backoff"), made, error, job, strategy, rng)
        except Exception as exc:  # the job fails now; the worker reports it
            return Outcome("failed", strategy_error=exc)
        if delay is not None:
            return Outcome("retry", delay_ms=delay)
        return Outcome("failed")
    exhausted = not isinstance(error, UnrecoverableError) or bool(job.deferred_failure)
    return Outcome("failed", exhausted=exhausted and made >= job.attempts)


class FailedJobView(JobView, Protocol):
    """What :func:`dead_letter_kind` reads from a job besides :class:`JobView`."""

    corruption: str | None


def dead_letter_kind(job: FailedJobView, error: BaseException, outcome: Outcome) -> str:
    """Why a job failed for good, as its dead-letter entry's ``kind``:
    ``damaged`` (its hash could not be read), ``stalled`` (failed by the
    stalled check), ``timeout`` (its last attempt timed out),
    ``backoff-error`` (its backoff strategy raised), ``unrecoverable``
    (``UnrecoverableError``) or ``attempts-exhausted``; an exception with a
    ``dead_letter_kind`` string attribute names its own."""
    if job.corruption is not None:
        return "damaged"
    if job.deferred_failure:
        return "stalled"
    custom = getattr(error, "dead_letter_kind", None)
    if isinstance(custom, str) and custom:
        return custom
    if isinstance(error, JobTimeoutError):
        return "timeout"
    if outcome.strategy_error is not None:
        return "backoff-error"
    if isinstance(error, UnrecoverableError):
        return "unrecoverable"
    return "attempts-exhausted"
