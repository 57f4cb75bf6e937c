"""``WorkerHooks``: the extension point for metrics, tracing and logging, one empty method per
lifecycle point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..job import JobBase
    from ._worker import Worker


class WorkerHooks:
    """Subclass and override the methods you need; pass instances as
    ``Worker(..., hooks=[...])``.

    Every method is a plain (sync) function called on the worker's event
    loop, in the order the hooks were given, so it must be quick and must not
    block. An exception raised by a hook is logged (logger
    ``pyqueue.worker``) and ignored: a hook can never break the worker. A
    method left as defined here costs nothing: the worker only calls the
    methods a hook overrides.
    """

    def on_worker_start(self, worker: Worker) -> None:
        """The worker has started (its connections and threads are set up)."""

    def on_worker_stop(self, worker: Worker) -> None:
        """The worker has closed (after its active jobs finished or were handed back)."""

    def on_fetch(self, job_ids: Sequence[str]) -> None:
        """Jobs were taken from the queue (by a fetch, or handed out with a finish)."""

    def before_process(self, job: JobBase) -> None:
        """The processor is about to run ``job`` (after the ``active`` event)."""

    def after_process(self, job: JobBase, result: Any, error: BaseException | None) -> None:
        """The processor returned ``result`` or raised ``error`` (before the outcome
        is written to Redis)."""

    def on_completed(self, job: JobBase, result: Any) -> None:
        """``job`` completed: Redis accepted its result."""

    def on_failed(self, job: JobBase, error: BaseException, will_retry: bool) -> None:
        """An attempt of ``job`` failed; ``will_retry`` says whether another attempt
        follows. ``job.attempts_made`` already counts the failed attempt."""

    def on_retry(self, job: JobBase, error: BaseException, delay: float) -> None:
        """A failed attempt of ``job`` will be retried in ``delay`` seconds (0: at once)."""

    def on_stalled(self, job_id: str) -> None:
        """This worker's stalled check moved ``job_id`` back to wait (maybe another
        worker's job)."""


#: The names of the hook methods, in lifecycle order.
HOOK_METHODS = ("on_worker_start", "on_worker_stop", "on_fetch", "before_process",
                "after_process", "on_completed", "on_failed", "on_retry", "on_stalled")
