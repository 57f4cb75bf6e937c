"""``/metrics``: what :class:`pyqueue.prometheus.QueueCollector` reports, for the queues the
dashboard shows, read from Redis at scrape time with the dashboard's own (asyncio) client
(needs ``prometheus-client``; without it the path answers 404 saying so).

Names as in the metrics contract: ``pyqueue_queue_jobs{queue,state}``,
``pyqueue_queue_paused{queue}``, ``pyqueue_queue_workers{queue}``,
``pyqueue_queue_oldest_waiting_age_seconds{queue}`` and
``pyqueue_queue_finished_total{queue,state}``. The worker-side counters and
histograms come from the workers' own exporters, not from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .._ops_stats import queue_stats
from ..errors import RedisDataError
from .context import dashboard

logger = logging.getLogger("pyqueue.web")


class _Snapshot:
    """A collector that hands out families read before the scrape is rendered."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.families


async def metrics(request: Request) -> Response:
    """``QueueCollector``'s families for every queue shown, in Prometheus' text format."""
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        from ..prometheus import queue_families
    except ImportError:
        raise HTTPException(404, "/metrics needs prometheus-client: "
                                 "pip install prometheus-client") from None
    dash = dashboard(request)
    now_ms = int(time.time() * 1000)
    stats = []
    for name in await dash.queue_names():
        try:
            stats.append(await dash.run(queue_stats(dash.keys(name), now_ms)))
        except RedisDataError as exc:  # as QueueCollector: a damaged queue is left out
            logger.warning("dashboard /metrics: queue %r left out of this scrape: %s", name, exc)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(queue_families(stats)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
