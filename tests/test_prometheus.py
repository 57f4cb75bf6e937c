"""Prometheus metrics against a real Redis: the scrape-time ``QueueCollector`` (parsed with
prometheus-client's own parser and compared with the queue's real counts), the
worker-side ``PrometheusHooks``, and the ``pyqueue metrics`` / ``pyqueue worker
--metrics-port --processes 3`` exporters scraped over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
from _worker_helpers import wait_for, wait_for_sync
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pyqueue import AsyncQueue, DelayedError, Queue, Worker
from pyqueue._keys import QueueKeys
from pyqueue.prometheus import PrometheusHooks, QueueCollector, metrics_app

ROOT = Path(__file__).resolve().parents[1]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition text: (name, labels) -> value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(parsed: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float | None:
    return parsed.get((name, frozenset(labels.items())))


def scrape(collector: QueueCollector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return samples(generate_latest(registry).decode())


def ok(job: Any) -> Any:
    if job.data.get("fail"):
        raise ValueError("boom")
    return 1


async def test_collector_reports_the_real_counts(redis_url: str, queue_name: str,
                                                 redis_client: redis.Redis) -> None:
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        worker = Worker(queue_name, ok, connection=redis_url, metrics={}, log_jobs=False,
                        autorun=False)
        await worker.start()
        try:
            for data in ({}, {}, {"fail": True}):
                await q.add("done", data)
            await wait_for(lambda: worker.jobs_processed >= 3, what="3 finishes")
            await wait_for(lambda: redis_client.zcard(QueueKeys("bull", queue_name).workers),
                           what="heartbeat")
            await q.pause()
            await q.add("w1", {})
            await q.add("w2", {})
            await q.add("p", {}, priority=2)
            await q.add("d", {}, delay=60)
            collector = QueueCollector(redis_url, [queue_name], bullmq_names=True)
            try:
                parsed = scrape(collector)
            finally:
                collector.close()
            counts = await q.get_job_counts()
        finally:
            await worker.close()
    assert counts["waiting"] == 2 and counts["completed"] == 2 and counts["failed"] == 1
    for state, count in counts.items():
        assert value(parsed, "pyqueue_queue_jobs", queue=queue_name, state=state) == count
        assert value(parsed, "bullmq_job_count", queue=queue_name, state=state) == count
    assert value(parsed, "pyqueue_queue_paused", queue=queue_name) == 1
    assert value(parsed, "pyqueue_queue_workers", queue=queue_name) == 1
    assert value(parsed, "pyqueue_queue_finished_total", queue=queue_name,
                 state="completed") == 2
    assert value(parsed, "pyqueue_queue_finished_total", queue=queue_name, state="failed") == 1
    assert value(parsed, "bullmq_job_completed_total", queue=queue_name) == 2
    assert value(parsed, "bullmq_job_failed_total", queue=queue_name) == 1
    age = value(parsed, "pyqueue_queue_oldest_waiting_age_seconds", queue=queue_name)
    assert age is not None and 0 <= age < 30
    assert not [name for name, labels in parsed if any(k == "job_id" for k, _ in labels)]


def test_oldest_waiting_age_and_discovery(redis_url: str, queue_name: str,
                                          redis_client: redis.Redis) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        old = q.add("old", {})
        q.add("new", {})
        created = int(redis_client.hget(f"bull:{queue_name}:{old.id}", "timestamp") or 0)
        redis_client.hset(f"bull:{queue_name}:{old.id}", "timestamp", created - 90_000)
    collector = QueueCollector(redis_url)  # every queue, found by scanning
    try:
        parsed = scrape(collector)
    finally:
        collector.close()
    age = value(parsed, "pyqueue_queue_oldest_waiting_age_seconds", queue=queue_name)
    assert age is not None and 90 <= age < 120
    assert value(parsed, "pyqueue_queue_jobs", queue=queue_name, state="waiting") == 2
    assert value(parsed, "pyqueue_queue_workers", queue=queue_name) == 0


async def test_worker_hooks_count_and_time_jobs(redis_url: str, queue_name: str) -> None:
    registry = CollectorRegistry()
    calls = {"n": 0}

    async def process(job: Any) -> Any:
        calls["n"] += 1
        if job.data.get("fail"):
            raise ValueError("boom")
        if job.data.get("later") and job.attempts_started == 1:
            await job.move_to_delayed(0.05)
            raise DelayedError()
        return 1

    async with AsyncQueue(queue_name, connection=redis_url) as q:
        worker = Worker(queue_name, process, connection=redis_url, concurrency=3,
                        hooks=[PrometheusHooks(registry)], log_jobs=False, autorun=False)
        await worker.start()
        parsed = samples(generate_latest(registry).decode())
        assert value(parsed, "pyqueue_worker_concurrency", queue=queue_name) == 3
        try:
            await q.add("a", {})
            await q.add("b", {})
            await q.add("f", {"fail": True}, attempts=2)
            await q.add("l", {"later": True})
            await wait_for(lambda: worker.jobs_processed >= 4, what="4 final outcomes")
        finally:
            await worker.close()
    parsed = samples(generate_latest(registry).decode())
    processed = {outcome: value(parsed, "pyqueue_jobs_processed_total", queue=queue_name,
                                outcome=outcome)
                 for outcome in ("completed", "failed", "retried", "delayed")}
    assert processed == {"completed": 3, "failed": 1, "retried": 1, "delayed": 1}
    # Six attempts ran; waits are observed on first attempts only (4 jobs).
    assert value(parsed, "pyqueue_job_duration_seconds_count", queue=queue_name) == 6
    assert value(parsed, "pyqueue_job_wait_seconds_count", queue=queue_name) == 4
    assert value(parsed, "pyqueue_worker_active_jobs", queue=queue_name) == 0
    assert value(parsed, "pyqueue_worker_concurrency", queue=queue_name) == 0
    assert calls["n"] == 6


def _start(argv: list[str], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pyqueue.cli", *argv], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}",
                                 **env})


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def _port_from(stream: Any, marker: str) -> int:
    """Read lines until one holds ``marker``'s URL; return its port."""
    for _ in range(50):
        line = stream.readline()
        if not line:
            break
        if marker in line:
            return int(line.split("/metrics")[0].rsplit(":", 1)[1])
    pytest.fail(f"no {marker!r} line")


def _scrape_url(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return samples(reply.read().decode())


def test_pyqueue_metrics_command_serves_the_counts(redis_url: str, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        q.add("a", {})
        q.add("b", {}, delay=30)
        counts = q.get_job_counts()
    proc = _start(["metrics", "--port", "0", "--host", "127.0.0.1", "--queue", queue_name,
                   "--redis", redis_url])
    try:
        assert proc.stdout is not None
        port = _port_from(proc.stdout, "serving http://")
        parsed = _scrape_url(port)
    finally:
        out, err = _stop(proc)
    assert proc.returncode == 0, err
    for state, count in counts.items():
        assert value(parsed, "pyqueue_queue_jobs", queue=queue_name, state=state) == count
    assert "secret" not in out + err


@pytest.mark.slow
def test_worker_processes_share_one_metrics_endpoint(redis_url: str, queue_name: str,
                                                     tmp_path: Path) -> None:
    proc = _start(["worker", "_proc_jobs:echo", "--queue", queue_name, "--processes", "3",
                   "--concurrency", "2", "--metrics-port", "0", "--metrics-host", "127.0.0.1",
                   "--redis", redis_url], PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    try:
        assert proc.stderr is not None
        port = _port_from(proc.stderr, "metrics of 3 processes")
        with Queue(queue_name, connection=redis_url) as q:
            q.add_bulk([{"name": "e", "data": {"i": i}} for i in range(30)])

        def all_counted() -> Any:
            parsed = _scrape_url(port)
            done = value(parsed, "pyqueue_jobs_processed_total", queue=queue_name,
                         outcome="completed")
            slots = value(parsed, "pyqueue_worker_concurrency", queue=queue_name)
            beats = value(parsed, "pyqueue_queue_workers", queue=queue_name)  # heartbeats
            return parsed if done == 30 and slots == 6 and beats == 3 else None

        parsed = wait_for_sync(all_counted, timeout=60, what="30 jobs from 3 processes")
    finally:
        _stop(proc)
    assert value(parsed, "pyqueue_job_duration_seconds_count", queue=queue_name) == 30
    assert value(parsed, "pyqueue_queue_jobs", queue=queue_name, state="completed") == 30


async def test_the_grafana_dashboard_queries_exported_names(redis_url: str,
                                                            queue_name: str) -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    wanted = {name for expr in exprs for name in re.findall(r"\bpyqueue_\w+", expr)}
    registry = CollectorRegistry()
    collector = QueueCollector(redis_url, [queue_name])
    registry.register(collector)
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        worker = Worker(queue_name, ok, connection=redis_url, metrics={}, log_jobs=False,
                        hooks=[PrometheusHooks(registry)], autorun=False)
        await worker.start()
        try:
            await q.add("a", {})
            await wait_for(lambda: worker.jobs_processed >= 1, what="a job")
            exported = {name for name, _ in samples(generate_latest(registry).decode())}
        finally:
            await worker.close()
            collector.close()
    assert len(wanted) >= 8
    assert wanted - exported == set()


def test_a_damaged_head_job_does_not_break_the_scrape(redis_url: str, queue_name: str,
                                                      redis_client: redis.Redis) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        job = q.add("x", {})
    redis_client.delete(f"bull:{queue_name}:{job.id}")
    redis_client.set(f"bull:{queue_name}:{job.id}", "not a hash")
    collector = QueueCollector(redis_url, [queue_name])
    try:
        parsed = scrape(collector)
    finally:
        collector.close()
        redis_client.delete(*redis_client.keys(f"bull:{queue_name}:*"))
    assert value(parsed, "pyqueue_queue_jobs", queue=queue_name, state="waiting") == 1
    assert value(parsed, "pyqueue_queue_oldest_waiting_age_seconds", queue=queue_name) == 0


def test_a_damaged_queue_is_left_out_not_the_scrape(redis_url: str, queue_name: str,
                                                    redis_client: redis.Redis) -> None:
    broken = queue_name + "-broken"
    with Queue(queue_name, connection=redis_url) as q, \
            Queue(broken, connection=redis_url) as b:
        q.add("x", {})
        b.add("y", {})
    redis_client.delete(f"bull:{broken}:wait")
    redis_client.set(f"bull:{broken}:wait", "not a list")
    collector = QueueCollector(redis_url, [broken, queue_name])
    try:
        parsed = scrape(collector)
    finally:
        collector.close()
        # Other tests list every queue of this server: leave no damaged one behind.
        redis_client.delete(*redis_client.keys(f"bull:{broken}:*"))
    assert value(parsed, "pyqueue_queue_jobs", queue=queue_name, state="waiting") == 1
    assert value(parsed, "pyqueue_queue_jobs", queue=broken, state="waiting") is None


async def test_metrics_app_serves_the_collector_over_asgi(redis_url: str,
                                                          queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        q.add("x", {})
    app = metrics_app(redis_url, [queue_name], bullmq_names=True)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
             "headers": [], "http_version": "1.1", "scheme": "http", "root_path": "",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    parsed = samples(b"".join(m.get("body", b"") for m in sent[1:]).decode())
    assert value(parsed, "pyqueue_queue_jobs", queue=queue_name, state="waiting") == 1
    assert value(parsed, "bullmq_job_count", queue=queue_name, state="waiting") == 1


def test_single_worker_metrics_port(redis_url: str, queue_name: str) -> None:
    proc = _start(["worker", "_proc_jobs:echo", "--queue", queue_name, "--metrics-port", "0",
                   "--metrics-host", "127.0.0.1", "--redis", redis_url])
    try:
        assert proc.stderr is not None
        port = _port_from(proc.stderr, "metrics on http://")
        with Queue(queue_name, connection=redis_url) as q:
            q.add_bulk([{"name": "e", "data": {"i": i}} for i in range(5)])

        def counted() -> Any:
            parsed = _scrape_url(port)
            done = value(parsed, "pyqueue_jobs_processed_total", queue=queue_name,
                          outcome="completed")
            return parsed if done == 5 else None

        parsed = wait_for_sync(counted, timeout=30, what="5 jobs counted")
    finally:
        _out, err = _stop(proc)
    assert proc.returncode == 0, err
    assert value(parsed, "pyqueue_queue_jobs", queue=queue_name, state="completed") == 5
    assert value(parsed, "pyqueue_worker_concurrency", queue=queue_name) == 1
