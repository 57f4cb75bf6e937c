"""Prometheus metrics (``pip install 'pyqueue-redis[prometheus]'``): a scrape-time
collector that reads the queues from Redis, and worker hooks that count and time
the jobs a worker runs.

- :class:`QueueCollector` reads Redis when Prometheus scrapes, so its numbers
  are right whatever number of workers, processes or machines there are:
  ``pyqueue_queue_jobs{queue,state}``, ``pyqueue_queue_paused{queue}``,
  ``pyqueue_queue_workers{queue}``, ``pyqueue_queue_oldest_waiting_age_seconds{queue}``
  and ``pyqueue_queue_finished_total{queue,state}`` (BullMQ metrics' totals,
  kept by workers started with ``metrics=``). With ``bullmq_names=True`` it also
  writes the names BullMQ's ``exportPrometheusMetrics`` uses
  (``bullmq_job_count{queue,state}``, ``bullmq_job_completed_total{queue}``,
  ``bullmq_job_failed_total{queue}``), for dashboards made for BullMQ.
- :class:`PrometheusHooks` (``Worker(..., hooks=[PrometheusHooks()])``):
  ``pyqueue_jobs_processed_total{queue,outcome}`` (completed, failed, retried,
  delayed, stalled), ``pyqueue_job_duration_seconds{queue}``,
  ``pyqueue_job_wait_seconds{queue}`` (from when the job was due to when it
  started, first attempts only, so deliberate delays are not counted),
  ``pyqueue_worker_active_jobs{queue}`` and ``pyqueue_worker_concurrency{queue}``.
  Several processes: prometheus-client's multiprocess mode (set
  ``PROMETHEUS_MULTIPROC_DIR``; ``pyqueue worker --processes N --metrics-port P``
  does it for you), see docs/observability.md.

No metric has a job id label: a label per job would grow without bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import redis

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("pyqueue.prometheus needs prometheus-client: "
                      "pip install 'pyqueue-redis[prometheus]'") from exc

from . import _ops_read
from ._clock import Clock
from ._keys import QueueKeys, validate_prefix, validate_queue_name
from ._ops_stats import QueueStats, queue_stats
from ._plan import Plan
from ._runner import run_sync
from .connection import sync_client
from .errors import DelayedError, RedisDataError
from .job import JobBase
from .worker.hooks import WorkerHooks

__all__ = ["DURATION_BUCKETS", "PrometheusHooks", "QueueCollector", "metrics_app"]

logger = logging.getLogger("pyqueue.prometheus")

#: Histogram buckets (seconds) for job durations and waits: 5 ms to 10 min.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 120.0, 300.0, 600.0)


class QueueCollector(Collector):
    """Reads the queues' state from Redis at each scrape (a custom collector:
    ``registry.register(QueueCollector(connection=...))``).

    ``queues``: the queue names to report (default: every queue found under
    ``prefix`` at each scrape). ``bullmq_names``: also write BullMQ's metric
    names. A scrape costs three round trips per queue (and a scan to find the
    queues), reads only.
    """

    def __init__(self, connection: str | redis.Redis | None = None, queues: Iterable[str] | None
                 = None, *, prefix: str = "bull", bullmq_names: bool = False) -> None:
        self.prefix = validate_prefix(prefix)
        self.queues = None if queues is None else [validate_queue_name(q) for q in queues]
        self.bullmq_names = bullmq_names
        self._client, self._owned = sync_client(connection)
        self._clock = Clock()

    def close(self) -> None:
        """Close the Redis client if the collector made it."""
        if self._owned:
            self._client.close()

    def stats(self) -> list[QueueStats]:
        """Read every reported queue's numbers now. A queue whose keys are damaged
        (a Redis type error) is left out of this scrape, with a warning."""
        names: list[str] = run_sync(self._client, self._names())
        out = []
        for name in names:
            try:
                out.append(run_sync(self._client, queue_stats(QueueKeys(self.prefix, name),
                                                              self._clock.now_ms())))
            except RedisDataError as exc:
                logger.warning("metrics: queue %r left out of this scrape: %s", name, exc)
        return out

    def _names(self) -> Plan[list[str]]:
        yield from self._clock.sync()
        if self.queues is not None:
            return self.queues
        return (yield from _ops_read.queue_names(self.prefix))

    def describe(self) -> list[Any]:
        """Nothing: registering the collector must not read Redis."""
        return []

    def collect(self) -> Iterator[Any]:
        """The metric families, read from Redis now."""
        stats = self.stats()
        jobs = GaugeMetricFamily("pyqueue_queue_jobs", "Jobs in the queue, by state",
                                 labels=["queue", "state"])
        paused = GaugeMetricFamily("pyqueue_queue_paused", "1 when the queue is paused",
                                   labels=["queue"])
        workers = GaugeMetricFamily("pyqueue_queue_workers",
                                    "pyqueue workers with a fresh heartbeat", labels=["queue"])
        age = GaugeMetricFamily("pyqueue_queue_oldest_waiting_age_seconds",
                                "Seconds the oldest ready job has waited (0: none waits)",
                                labels=["queue"])
        finished = CounterMetricFamily(
            "pyqueue_queue_finished", "Jobs finished, from BullMQ's metrics (workers with "
            "metrics= keep them)", labels=["queue", "state"])
        for s in stats:
            for state, count in sorted(s.counts.items()):
                jobs.add_metric([s.queue, state], count)
            paused.add_metric([s.queue], 1 if s.paused else 0)
            workers.add_metric([s.queue], s.workers)
            age.add_metric([s.queue], s.oldest_waiting_age or 0.0)
            for state, total in sorted(s.finished_totals.items()):
                finished.add_metric([s.queue, state], total)
        yield from (jobs, paused, workers, age, finished)
        if self.bullmq_names:
            yield from _bullmq_families(stats)


def metrics_app(connection: str | redis.Redis | None = None, queues: Iterable[str] | None = None,
                *, prefix: str = "bull", bullmq_names: bool = False,
                registry: CollectorRegistry | None = None) -> Any:
    """An ASGI app serving ``/metrics`` in Prometheus' format: a
    :class:`QueueCollector` for ``queues`` (every queue when None), plus what
    ``registry`` holds (a fresh registry when None; pass prometheus-client's
    ``REGISTRY`` to include this process's worker metrics). Mount it in a web
    app, e.g. Starlette's ``Mount("/metrics", app=metrics_app(url))``."""
    from prometheus_client import make_asgi_app

    target = CollectorRegistry() if registry is None else registry
    target.register(QueueCollector(connection, queues, prefix=prefix,
                                   bullmq_names=bullmq_names))
    return make_asgi_app(target)


def _bullmq_families(stats: Sequence[QueueStats]) -> Iterator[Any]:
    """The names of BullMQ's ``exportPrometheusMetrics``."""
    count = GaugeMetricFamily("bullmq_job_count", "Number of jobs in the queue by state",
                              labels=["queue", "state"])
    completed = CounterMetricFamily("bullmq_job_completed", "Total number of completed jobs",
                                    labels=["queue"])
    failed = CounterMetricFamily("bullmq_job_failed", "Total number of failed jobs",
                                 labels=["queue"])
    for s in stats:
        for state, n in sorted(s.counts.items()):
            count.add_metric([s.queue, state], n)
        completed.add_metric([s.queue], s.finished_totals.get("completed", 0))
        failed.add_metric([s.queue], s.finished_totals.get("failed", 0))
    yield from (count, completed, failed)


class _WorkerMetrics:
    """The worker-side metric objects of one registry (created once per registry)."""

    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        self.processed = Counter("pyqueue_jobs_processed", "Job attempts that ended, by "
                                 "outcome", ["queue", "outcome"], registry=registry)
        self.duration = Histogram("pyqueue_job_duration_seconds", "Time the processor ran",
                                  ["queue"], buckets=buckets, registry=registry)
        self.wait = Histogram("pyqueue_job_wait_seconds", "Time from due to start (first "
                              "attempts)", ["queue"], buckets=buckets, registry=registry)
        self.active = Gauge("pyqueue_worker_active_jobs", "Jobs being processed",
                            ["queue"], registry=registry, multiprocess_mode="livesum")
        self.concurrency = Gauge("pyqueue_worker_concurrency", "Jobs workers may run at "
                                 "once", ["queue"], registry=registry,
                                 multiprocess_mode="livesum")


_METRICS: dict[int, tuple[CollectorRegistry, _WorkerMetrics]] = {}


def _metrics_for(registry: CollectorRegistry, buckets: Sequence[float]) -> _WorkerMetrics:
    entry = _METRICS.get(id(registry))
    if entry is None or entry[0] is not registry:
        entry = _METRICS[id(registry)] = (registry, _WorkerMetrics(registry, buckets))
    return entry[1]


def _first_wait(fields: dict[str, Any]) -> float | None:
    """Seconds from when a job was due to when its first attempt started (None for
    a later attempt, or fields that do not say). Fetched fields may hold ints."""
    try:
        if int(fields.get("ats") or 1) != 1:
            return None
        started, created = fields.get("processedOn"), fields.get("timestamp")
        if started is None or created is None:
            return None
        due = float(created) + float(fields.get("delay") or 0)
        return max(0.0, (float(started) - due) / 1000)
    except (TypeError, ValueError):
        return None


class _QueueSeries:
    """One queue's labelled series, looked up once (``labels()`` is the slow part)."""

    def __init__(self, m: _WorkerMetrics, queue: str) -> None:
        self.active = m.active.labels(queue)
        self.concurrency = m.concurrency.labels(queue)
        self.duration = m.duration.labels(queue)
        self.wait = m.wait.labels(queue)
        self.completed = m.processed.labels(queue, "completed")
        self.failed = m.processed.labels(queue, "failed")
        self.retried = m.processed.labels(queue, "retried")
        self.delayed = m.processed.labels(queue, "delayed")
        self.stalled = m.processed.labels(queue, "stalled")


class PrometheusHooks(WorkerHooks):
    """Worker hooks that count and time jobs in prometheus-client metrics.

    One instance per worker; several workers (of any queues) may share a
    ``registry`` (default: prometheus-client's global one), their series are
    told apart by the ``queue`` label.
    """

    def __init__(self, registry: CollectorRegistry | None = None,
                 buckets: Sequence[float] = DURATION_BUCKETS) -> None:
        self.registry = REGISTRY if registry is None else registry
        self._m = _metrics_for(self.registry, buckets)
        self._series: dict[str, _QueueSeries] = {}
        self._started: dict[str, float] = {}
        self._queue = ""

    def _of(self, queue: str) -> _QueueSeries:
        series = self._series.get(queue)
        if series is None:
            series = self._series[queue] = _QueueSeries(self._m, queue)
        return series

    def on_worker_start(self, worker: Any) -> None:
        self._queue = worker.name
        series = self._of(worker.name)
        series.concurrency.inc(worker.concurrency)
        series.active.inc(0)

    def on_worker_stop(self, worker: Any) -> None:
        self._of(worker.name).concurrency.dec(worker.concurrency)

    def before_process(self, job: JobBase) -> None:
        series = self._of(job.queue_name)
        series.active.inc()
        if len(self._started) > 100_000:  # finishes that never came (lost locks)
            self._started.clear()
        self._started[job.id] = time.perf_counter()
        wait = _first_wait(job.fields)
        if wait is not None:
            series.wait.observe(wait)

    def after_process(self, job: JobBase, result: Any, error: BaseException | None) -> None:
        series = self._of(job.queue_name)
        series.active.dec()
        started = self._started.pop(job.id, None)
        if started is not None:
            series.duration.observe(time.perf_counter() - started)
        if isinstance(error, DelayedError):
            series.delayed.inc()

    def on_completed(self, job: JobBase, result: Any) -> None:
        self._of(job.queue_name).completed.inc()

    def on_failed(self, job: JobBase, error: BaseException, will_retry: bool) -> None:
        if not will_retry:
            self._of(job.queue_name).failed.inc()

    def on_retry(self, job: JobBase, error: BaseException, delay: float) -> None:
        self._of(job.queue_name).retried.inc()

    def on_stalled(self, job_id: str) -> None:
        self._of(self._queue).stalled.inc()
