"""The ``pyqueue`` command line on a real local Redis Cluster (``--redis
redis+cluster://...``): listing queues scans every primary."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from pyqueue import Queue
from pyqueue.cli import main
from pyqueue.sharded import shard_names
from pyqueue.testing import LocalRedisCluster


def test_info_lists_queues_of_every_primary(redis_cluster: LocalRedisCluster, cluster_url: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    names = shard_names(f"c{uuid4().hex[:8]}", 3)  # one on each primary
    assert len({redis_cluster.primary_for(f"bull:{n}:id").port for n in names}) == 3
    for name in names:
        with Queue(name, connection=cluster_url) as queue:
            queue.add("a", 1)
    assert main(["info", "--json", "--redis", cluster_url]) == 0
    rows = {row["queue"]: row for row in json.loads(capsys.readouterr().out)}
    assert all(rows[name]["waiting"] == 1 for name in names)
    assert main(["info", names[1], "--redis", cluster_url]) == 0
    assert names[1] in capsys.readouterr().out
