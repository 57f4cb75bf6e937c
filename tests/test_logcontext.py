"""Job context on log records (``pyqueue.logcontext``) in async, thread and process
execution, the JSON and text formatters, and ``pyqueue worker --log-format json``,
against a real Redis."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _log_jobs import Capture, context_of, log_and_report
from _worker_helpers import wait_for

from pyqueue import AsyncQueue, Queue, Worker
from pyqueue.logcontext import (
    JobContextFilter,
    JobContextHook,
    JsonFormatter,
    TextFormatter,
    mask_urls,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    logger = logging.getLogger("tests.logctx")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def test_async_processor_records_carry_the_job(redis_url: str, queue_name: str,
                                                     capture: Capture) -> None:
    log = logging.getLogger("tests.logctx")

    async def process(job: Any) -> Any:
        log.info("working")
        log.info("mine", extra={"queue": "my-own"})  # a field the caller set wins
        if job.attempts_started == 1 and job.name == "retry":
            raise ValueError("again")
        return 1

    async with AsyncQueue(queue_name, connection=redis_url) as q:
        worker = Worker(queue_name, process, connection=redis_url, hooks=[JobContextHook()],
                        log_jobs=False, autorun=False, concurrency=2)
        await worker.start()
        try:
            first = await q.add("plain", {})
            second = await q.add("retry", {}, attempts=2)
            await wait_for(lambda: worker.jobs_processed >= 2, what="2 jobs")
        finally:
            await worker.close()
        log.info("outside")
    contexts = [context_of(r) for r in capture.records if r.getMessage() == "working"]
    assert sorted(contexts, key=lambda c: (c["job_id"], c["attempt"])) == [
        {"queue": queue_name, "job_id": first.id, "job_name": "plain", "attempt": 1},
        {"queue": queue_name, "job_id": second.id, "job_name": "retry", "attempt": 1},
        {"queue": queue_name, "job_id": second.id, "job_name": "retry", "attempt": 2},
    ]
    mine = [r for r in capture.records if r.getMessage() == "mine"]
    assert {getattr(r, "queue", None) for r in mine} == {"my-own"}
    assert {getattr(r, "job_id", None) for r in mine} == {first.id, second.id}
    outside = [r for r in capture.records if r.getMessage() == "outside"]
    assert context_of(outside[0]) == dict.fromkeys(context_of(outside[0]))


@pytest.mark.parametrize("execution", ["thread", "process"])
async def test_def_processor_records_carry_the_job(redis_url: str, queue_name: str,
                                                   execution: str) -> None:
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        worker = Worker(queue_name, log_and_report, connection=redis_url, execution=execution,
                        hooks=[JobContextHook()], log_jobs=False, autorun=False)
        await worker.start()
        try:
            job = await q.add("ctx", {})
            result = await job.wait_until_finished(timeout=30)
        finally:
            await worker.close()
    assert result == {"queue": queue_name, "job_id": job.id, "job_name": "ctx", "attempt": 1}


def test_without_the_hook_records_carry_nothing(redis_url: str, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        job = q.add("ctx", {})
    worker = Worker(queue_name, log_and_report, connection=redis_url, log_jobs=False)
    worker.run(burst=True)
    with Queue(queue_name, connection=redis_url) as q:
        done = q.get_job(job.id)
    assert done is not None
    assert done.return_value == {"queue": None, "job_id": None, "job_name": None,
                                 "attempt": None}


def _record(message: str, **context: Any) -> logging.LogRecord:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, message, None, None)
    for key, value in context.items():
        setattr(record, key, value)
    return record


def test_formatters_write_the_context_and_mask_passwords() -> None:
    record = _record("connecting to redis://app:hunter2@db:6379/0 failed",
                     queue="q", job_id="7", job_name="send", attempt=2)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "connecting to redis://app:***@db:6379/0 failed"
    assert {k: line[k] for k in ("queue", "job_id", "job_name", "attempt", "level",
                                 "logger")} == {"queue": "q", "job_id": "7",
                                                "job_name": "send", "attempt": 2,
                                                "level": "WARNING", "logger": "x"}
    text = TextFormatter().format(record)
    assert "hunter2" not in text and "[queue=q job=7 name=send attempt=2]" in text
    assert "job=" not in TextFormatter().format(_record("plain"))
    assert mask_urls("rediss://:pw@h/0 and unix://u:pw@/tmp/s") == \
        "rediss://:***@h/0 and unix://u:***@/tmp/s"
    assert JobContextFilter().filter(_record("x")) is True


def test_cli_worker_logs_json_with_the_job_context(redis_url: str, queue_name: str) -> None:
    secret_url = "redis://me:Sup3rSecret@example.invalid:6379/0"
    with Queue(queue_name, connection=redis_url) as q:
        job = q.add("line", {"url": secret_url, "fail": True}, attempts=2)
    done = subprocess.run(
        [sys.executable, "-m", "pyqueue.cli", "worker", "_log_jobs:log_line", "--queue",
         queue_name, "--burst", "--log-format", "json", "--redis", redis_url],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"})
    assert done.returncode == 0, done.stderr
    assert "Sup3rSecret" not in done.stderr + done.stdout
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["logger"] == "tests.logjobs"]
    assert [(m["queue"], m["job_id"], m["job_name"], m["attempt"]) for m in mine] == [
        (queue_name, job.id, "line", 1), (queue_name, job.id, "line", 2)]
    assert mine[0]["message"] == f"processing {job.id} via redis://me:***@example.invalid:6379/0"
    # pyqueue's own lines are JSON too, outside any job's context.
    assert any(line["logger"] == "pyqueue.worker" for line in lines)
