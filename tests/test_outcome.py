"""The worker's outcome decision (``pyqueue.worker._outcome.decide``), without Redis."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from pyqueue import (
    DelayedError,
    JobCancelledError,
    JobTimeoutError,
    RateLimitError,
    UnrecoverableError,
    register_backoff_strategy,
)
from pyqueue.worker._outcome import Outcome, decide


@dataclass
class FakeJob:
    """The job fields the decision reads (a plain record, not a mock)."""

    attempts_made: int = 0
    attempts: int = 1
    opts: dict[str, Any] = field(default_factory=dict)
    cancel_reason: str | None = None
    deferred_failure: str | None = None


def test_a_returned_attempt_completes() -> None:
    assert decide(FakeJob(), None) == Outcome("completed")


def test_a_job_cancelled_while_it_returned_is_cancelled() -> None:
    assert decide(FakeJob(cancel_reason="stop"), None).kind == "cancelled"


def test_last_attempt_fails_for_good() -> None:
    outcome = decide(FakeJob(attempts_made=2, attempts=3), ValueError("x"))
    assert outcome == Outcome("failed", exhausted=True)


def test_single_attempt_fails_for_good() -> None:
    assert decide(FakeJob(), ValueError("x")) == Outcome("failed", exhausted=True)


def test_attempts_left_retry_at_once_without_backoff() -> None:
    assert decide(FakeJob(attempts=3), ValueError("x")) == Outcome("retry", delay_ms=0)


@pytest.mark.parametrize(("made", "expected"), [(0, 1000), (1, 2000), (2, 4000)])
def test_exponential_backoff_doubles(made: int, expected: int) -> None:
    job = FakeJob(attempts_made=made, attempts=5,
                  opts={"backoff": {"type": "exponential", "delay": 1000}})
    assert decide(job, ValueError("x")) == Outcome("retry", delay_ms=expected)


def test_fixed_backoff_with_jitter_stays_in_range() -> None:
    job = FakeJob(attempts=5, opts={"backoff": {"type": "fixed", "delay": 1000,
                                                "jitter": 0.5}})
    delays = {decide(job, ValueError("x"), rng=random.Random(seed)).delay_ms
              for seed in range(20)}
    assert all(500 <= d < 1000 for d in delays) and len(delays) > 1


def test_timeout_is_an_ordinary_failure() -> None:
    assert decide(FakeJob(attempts=2), JobTimeoutError("t")).kind == "retry"


def test_unrecoverable_fails_now_without_exhausting() -> None:
    outcome = decide(FakeJob(attempts=5), UnrecoverableError("no"))
    assert outcome == Outcome("failed", exhausted=False)


def test_unrecoverable_on_the_last_attempt_is_not_exhausted() -> None:
    # BullMQ writes no retries-exhausted event for an unrecoverable error.
    assert decide(FakeJob(), UnrecoverableError("no")).exhausted is False


def test_deferred_failure_is_exhausted_on_the_last_attempt() -> None:
    job = FakeJob(deferred_failure="stalled too often")
    assert decide(job, UnrecoverableError("stalled"), final=True) == \
        Outcome("failed", exhausted=True)


def test_final_skips_the_remaining_attempts() -> None:
    assert decide(FakeJob(attempts=3), ValueError("corrupt"), final=True).kind == "failed"


def test_delayed_and_rate_limited_hand_the_job_back() -> None:
    assert decide(FakeJob(attempts=3), DelayedError()).kind == "delayed"
    assert decide(FakeJob(), RateLimitError()).kind == "rate_limited"


def test_cancellation_wins_over_retry() -> None:
    assert decide(FakeJob(attempts=3), JobCancelledError("c")).kind == "cancelled"
    assert decide(FakeJob(attempts=3, cancel_reason="c"), ValueError("x")).kind == "cancelled"


def test_unrecoverable_wins_over_cancellation() -> None:
    job = FakeJob(attempts=3, cancel_reason="c")
    assert decide(job, UnrecoverableError("no")).kind == "failed"


def test_custom_strategy_decides_the_delay_or_declines() -> None:
    job = FakeJob(attempts=3, opts={"backoff": {"type": "custom"}})

    def strategy(attempts_made: int, error: BaseException, job: Any) -> float | None:
        return None if isinstance(error, KeyError) else 0.25 * attempts_made

    assert decide(job, ValueError("x"), strategy=strategy) == Outcome("retry", delay_ms=250)
    assert decide(job, KeyError("x"), strategy=strategy) == Outcome("failed")


def test_a_raising_strategy_fails_the_job_and_is_reported() -> None:
    boom = RuntimeError("strategy broke")

    def strategy(attempts_made: int, error: BaseException, job: Any) -> float:
        raise boom

    job = FakeJob(attempts=3, opts={"backoff": {"type": "custom"}})
    assert decide(job, ValueError("x"), strategy=strategy) == \
        Outcome("failed", strategy_error=boom)


def test_registered_strategy_wins_over_the_workers() -> None:
    register_backoff_strategy("outcome-test-linear", lambda made, exc, job: made)
    job = FakeJob(attempts_made=1, attempts=3, opts={"backoff": {"type": "outcome-test-linear"}})
    assert decide(job, ValueError("x"), strategy=lambda *a: 100).delay_ms == 2000


def test_exception_chains_are_walked_once_even_when_they_loop() -> None:
    import redis.exceptions as rexc

    from pyqueue._plan import exception_chain as chain
    from pyqueue._plan import needs_reconnect as is_failover

    first = ValueError("a")
    second = rexc.ResponseError("WRONGTYPE wrong kind of value")
    first.__cause__ = second
    second.__cause__ = first  # a loop, as `raise translate(e) from e` can make
    second.__context__ = second
    assert chain(first) == [first, second]
    assert is_failover(first) is False
    readonly = rexc.ResponseError("READONLY You can't write against a read only replica.")
    readonly.__context__ = first
    first.__context__ = readonly
    assert is_failover(first) is True
