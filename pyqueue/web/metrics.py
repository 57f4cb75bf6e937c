"""``/metrics``: the queues' gauges in Prometheus' text format, read from Redis at scrape
time (needs ``prometheus-client``; without it the path answers 404 saying so).

Names as in the metrics contract: ``pyqueue_queue_jobs{queue,state}``,
``pyqueue_queue_paused{queue}``, ``pyqueue_queue_workers{queue}``,
``pyqueue_queue_oldest_waiting_age_seconds{queue}``. The worker-side counters
and histograms come from the workers' own exporters, not from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .context import dashboard
from .pages import summaries_of
from .queries import QueueSummary


def _families(summaries: list[QueueSummary]) -> list[Any]:
    from prometheus_client.core import GaugeMetricFamily

    jobs = GaugeMetricFamily("pyqueue_queue_jobs", "Jobs in each state of the queue.",
                             labels=["queue", "state"])
    paused = GaugeMetricFamily("pyqueue_queue_paused", "1 when the queue is paused.",
                               labels=["queue"])
    workers = GaugeMetricFamily("pyqueue_queue_workers", "Workers consuming the queue.",
                                labels=["queue"])
    oldest = GaugeMetricFamily("pyqueue_queue_oldest_waiting_age_seconds",
                               "Age of the oldest waiting job (0 when none waits).",
                               labels=["queue"])
    for s in summaries:
        for state, count in s.counts.items():
            jobs.add_metric([s.name, state], count)
        paused.add_metric([s.name], 1 if s.paused else 0)
        workers.add_metric([s.name], s.workers)
        oldest.add_metric([s.name], s.oldest_waiting_age or 0.0)
    return [jobs, paused, workers, oldest]


class _Snapshot:
    """A collector that hands out families read before the scrape is rendered."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.families


async def metrics(request: Request) -> Response:
    """The gauges of every queue shown, in Prometheus' text format."""
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    except ImportError:
        raise HTTPException(404, "/metrics needs prometheus-client: "
                                 "pip install prometheus-client") from None
    dash = dashboard(request)
    summaries = await summaries_of(dash, await dash.queue_names())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(_families(summaries)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
