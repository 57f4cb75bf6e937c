"""BullMQ (Node, ioredis ``Cluster``) and pyqueue on the same queue of a real
local Redis Cluster: jobs added by one are processed by the other."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyqueue import Queue
from pyqueue.testing import LocalRedisCluster, run_until_idle_async

SCRIPT = Path(__file__).resolve().parents[1] / "interop" / "bullmq_cluster.mjs"


def bullmq(cluster: LocalRedisCluster, command: str, **args: Any) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (SCRIPT.parent / "node_modules" / "bullmq").exists():
        pytest.skip("needs node and tests/interop/node_modules (scripts/setup.sh installs them)")
    payload = json.dumps({"port": cluster.ports[0], "prefix": "{bull}", **args})
    proc = subprocess.run([node, str(SCRIPT), command, payload], capture_output=True,
                          text=True, timeout=60)
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, (out, proc.stderr[-2000:])
    return out


async def test_bullmq_and_pyqueue_share_a_cluster_queue(redis_cluster: LocalRedisCluster,
                                                        cluster_url: str,
                                                        queue_name: str) -> None:
    added = bullmq(redis_cluster, "add", queue=queue_name, jobs=5)["ids"]
    done = await run_until_idle_async(queue_name, lambda job: {"py": job.data["i"]},
                                      connection=cluster_url, prefix="{bull}", timeout=15)
    assert sorted(job.id for job in done) == sorted(added)

    with Queue(queue_name, prefix="{bull}", connection=cluster_url) as queue:
        ids = [queue.add("py", {"i": i}).id for i in range(5)]
        out = bullmq(redis_cluster, "work", queue=queue_name, count=5, timeoutMs=15000)
        assert sorted(p["id"] for p in out["processed"]) == sorted(ids)
        job = queue.get_job(ids[3])
        assert job is not None and job.return_value == {"doubled": 6}
