"""Fixtures of the Redis Cluster suite: a real local cluster (3 primaries, 1
replica each, :class:`pyqueue.testing.LocalRedisCluster`) that the session
starts itself and stops at the end; tests isolate by queue name, each name
holding a hash tag. Tests that kill nodes start a cluster of their own."""

from __future__ import annotations

from uuid import uuid4

import pytest

from pyqueue.errors import RedisConnectionError
from pyqueue.testing import LocalRedisCluster
from pyqueue.testing.cluster import redis_cli


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Without ``redis-cli`` no local cluster can be made: skip, saying why."""
    try:
        redis_cli()
    except RedisConnectionError as exc:
        skip = pytest.mark.skip(reason=str(exc))
        for item in items:
            if "tests/cluster/" in str(item.path).replace("\\", "/"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_cluster(pyqueue_redis_cluster: LocalRedisCluster) -> LocalRedisCluster:
    """The session's own cluster (pyqueue's pytest plugin fixture)."""
    return pyqueue_redis_cluster


@pytest.fixture
def cluster_url(redis_cluster: LocalRedisCluster) -> str:
    """``redis+cluster://`` URL of the session's cluster."""
    return redis_cluster.url


@pytest.fixture
def tagged_name() -> str:
    """A queue name unique to this test, holding a hash tag."""
    return f"{{t{uuid4().hex[:12]}}}"
