"""``RelayHooks``: what a relay reports at each step (metrics, logging, tests)."""

from __future__ import annotations

from collections.abc import Sequence


class RelayHooks:
    """One empty method per step of a relay batch; subclass and override.

    Hooks run in the relay's thread; an exception from one fails the batch
    (it rolls back and is retried), so keep them small.
    """

    def on_added(self, ids: Sequence[int]) -> None:
        """The jobs of rows ``ids`` are in Redis; the batch is not committed yet."""

    def on_published(self, ids: Sequence[int]) -> None:
        """The batch committed: rows ``ids`` are published."""

    def on_invalid(self, row_id: int, error: BaseException) -> None:
        """Row ``row_id`` can never become a job (marked ``failed_at``)."""

    def on_error(self, error: BaseException) -> None:
        """Redis failed during a batch; the batch rolled back and will be retried."""


class PrometheusRelayHooks(RelayHooks):
    """Counters ``pyqueue_outbox_published_total``, ``pyqueue_outbox_invalid_total``
    and ``pyqueue_outbox_errors_total`` in ``prometheus_client``'s default registry."""

    _counters: tuple[object, object, object] | None = None

    def __init__(self) -> None:
        from prometheus_client import Counter

        if PrometheusRelayHooks._counters is None:  # registered once per process
            PrometheusRelayHooks._counters = (
                Counter("pyqueue_outbox_published", "Outbox rows published as jobs"),
                Counter("pyqueue_outbox_invalid", "Outbox rows that can never become jobs"),
                Counter("pyqueue_outbox_errors", "Relay batches rolled back by a Redis error"),
            )
        self.published, self.invalid, self.errors = PrometheusRelayHooks._counters

    def on_published(self, ids: Sequence[int]) -> None:
        self.published.inc(len(ids))  # type: ignore[attr-defined]

    def on_invalid(self, row_id: int, error: BaseException) -> None:
        self.invalid.inc()  # type: ignore[attr-defined]

    def on_error(self, error: BaseException) -> None:
        self.errors.inc()  # type: ignore[attr-defined]


def default_hooks() -> list[RelayHooks]:
    """The Prometheus counters when ``prometheus_client`` is installed, else nothing."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return []
    return [PrometheusRelayHooks()]
