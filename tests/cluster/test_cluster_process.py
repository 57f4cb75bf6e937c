"""Worker(execution="process") on a real local Redis Cluster: the children
build a cluster client of their own (from the seeds and settings the worker
sends them over a pipe) and write progress and logs, fenced by the lock token,
to the primary of the queue's slot; a timed-out job's child is killed and the
job fails or retries as on a single server."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from uuid import uuid4

import _proc_jobs
import pytest
import redis
import redis.asyncio.cluster
from _worker_helpers import check_child_reports, pid_alive, wait_for

from pyqueue import AsyncQueue, JobTimeoutError, Worker
from pyqueue._keys import QueueKeys
from pyqueue._procpool import child_connection
from pyqueue.testing import LocalRedisCluster


@pytest.fixture
async def queue(cluster_url: str, tagged_name: str) -> Any:
    q = AsyncQueue(tagged_name, connection=cluster_url)
    try:
        yield q
    finally:
        await q.obliterate(force=True)
        await q.close()


def process_worker(name: str, processor: Any, url: str, **options: Any) -> Worker:
    return Worker(name, processor, connection=url, execution="process", shutdown_grace=2,
                  **options)


async def first_attempt_progress(queue: AsyncQueue, job_id: str) -> Any:
    """``hangs_once_after_progress``'s first progress (``pid``, ``attempt``) once stored."""
    got = await queue.get_job(job_id)
    progress = got.progress if got is not None else None
    return progress if isinstance(progress, dict) and progress["attempt"] == 1 else None


async def test_process_worker_runs_jobs_on_a_cluster_queue(
        cluster_url: str, tagged_name: str, queue: AsyncQueue) -> None:
    async with process_worker(tagged_name, _proc_jobs.echo, cluster_url, concurrency=2):
        jobs = [await queue.add("j", {"n": n}) for n in range(6)]
        results = [await job.wait_until_finished(timeout=20) for job in jobs]
    assert [r["data"] for r in results] == [{"n": n} for n in range(6)]
    assert [r["id"] for r in results] == [job.id for job in jobs]
    pids = {r["pid"] for r in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # two children, reused
    assert (await queue.get_job_counts("completed"))["completed"] == 6


async def test_progress_and_logs_from_a_child_land_on_the_slots_primary(
        redis_cluster: LocalRedisCluster, cluster_url: str, tagged_name: str,
        queue: AsyncQueue) -> None:
    job = await check_child_reports(
        queue, process_worker(tagged_name, _proc_jobs.reports, cluster_url))
    # Written where the slot lives, read straight from that primary.
    keys = QueueKeys("bull", tagged_name)
    primary = redis_cluster.primary_for(keys.job(job.id))
    with redis.Redis(port=primary.port) as direct:
        assert direct.hget(keys.job(job.id), "progress") == b'{"step":"done"}'
        assert direct.lrange(keys.logs(job.id), 0, -1) == [b"hello from the child"]


@pytest.mark.parametrize("attempts", [1, 2])
async def test_a_timed_out_child_is_killed_and_the_job_fails_or_retries(
        cluster_url: str, tagged_name: str, queue: AsyncQueue, attempts: int) -> None:
    failed: list[BaseException] = []
    w = process_worker(tagged_name, _proc_jobs.hangs_once_after_progress, cluster_url)
    w.on("failed", lambda job, exc: failed.append(exc))
    async with w:
        # The timeout covers a fresh child's start on the retry (a few hundred ms).
        job = await queue.add("j", {}, attempts=attempts, timeout=2.0)
        first = await wait_for(lambda: first_attempt_progress(queue, job.id), timeout=20,
                               what="the first attempt's progress")
        hung = int(first["pid"])
        assert hung != os.getpid()
        await wait_for(lambda: not pid_alive(hung), timeout=10, what="the hung child killed")
        if attempts == 2:
            result = await job.wait_until_finished(timeout=20)
            assert result["attempt"] == 2 and result["pid"] != hung
        else:
            async def has_failed() -> bool:
                return await queue.get_job_state(job.id) == "failed"
            await wait_for(has_failed, timeout=10, what="failed")
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == attempts
    assert len(failed) == 1 and isinstance(failed[0], JobTimeoutError)
    if attempts == 1:
        assert stored.failed_reason is not None and "timed out" in stored.failed_reason


async def test_a_cancelled_jobs_child_is_killed(cluster_url: str, tagged_name: str,
                                                queue: AsyncQueue) -> None:
    async with process_worker(tagged_name, _proc_jobs.hangs_once_after_progress, cluster_url):
        job = await queue.add("j", {}, attempts=3)
        first = await wait_for(lambda: first_attempt_progress(queue, job.id), timeout=20,
                               what="the child's progress")
        hung = int(first["pid"])
        assert await queue.cancel_job(job.id, "operator said stop") == "requested"
        await wait_for(lambda: not pid_alive(hung), timeout=10, what="the child killed")

        async def has_failed() -> bool:
            return await queue.get_job_state(job.id) == "failed"
        await wait_for(has_failed, timeout=10, what="failed")
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.failed_reason == "operator said stop"
    assert stored.attempts_made == 1  # a cancellation is not retried


async def test_a_cluster_password_reaches_the_children_but_not_their_command_line(
        caplog: pytest.LogCaptureFixture) -> None:
    if not Path(f"/proc/{os.getpid()}/cmdline").exists():
        pytest.skip("needs /proc to read a child's command line")
    password = uuid4().hex
    name = f"{{pw{uuid4().hex[:8]}}}"
    caplog.set_level(logging.DEBUG)
    with LocalRedisCluster(replicas=0) as cluster:
        for port in cluster.ports:
            with redis.Redis(port=port) as node:
                node.config_set("requirepass", password)
        url = f"redis+cluster://:{password}@127.0.0.1:{cluster.ports[0]}"
        queue = AsyncQueue(name, connection=url)
        try:
            async with process_worker(name, _proc_jobs.reports, url):
                job = await queue.add("j", {})
                child_pid = await job.wait_until_finished(timeout=20)
                # The child is idle now, still running: its command line is readable.
                argv = Path(f"/proc/{child_pid}/cmdline").read_bytes()
            stored = await queue.get_job(job.id)
        finally:
            await queue.close()
    assert b"pyqueue._procchild" in argv and password.encode() not in argv
    assert stored is not None and stored.progress == {"step": "done"}
    assert password not in caplog.text


async def test_the_child_settings_carry_seeds_auth_and_tls(redis_cluster: LocalRedisCluster,
                                                            tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    client = redis.asyncio.cluster.RedisCluster.from_url(
        f"rediss://user:secret@127.0.0.1:{redis_cluster.ports[0]}",
        ssl_ca_certs=str(ca), ssl_cert_reqs="required", socket_timeout=7.0)
    settings = child_connection(client)
    assert settings["_kind"] == "cluster"
    assert settings["seeds"] == [["127.0.0.1", redis_cluster.ports[0]]]
    assert settings["username"] == "user" and settings["password"] == "secret"
    assert settings["ssl"] is True and settings["ssl_ca_certs"] == str(ca)
    assert settings["ssl_cert_reqs"] == "required" and settings["socket_timeout"] == 7.0
    assert "credential_provider" not in settings
    await client.aclose()
