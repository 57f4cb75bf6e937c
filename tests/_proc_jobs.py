"""Module-level processors for the process-mode tests (not a test module).

Process mode imports its processor by ``module:qualname`` in a child, so these
live at module level in an importable module. Processors that report to the
test write to Redis at ``data["url"]`` under keys named in ``data``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from pyqueue import Job, UnrecoverableError

ENTER = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n
"""


def _client(job: Job) -> redis.Redis:
    return redis.Redis.from_url(job.data["url"])


def echo(job: Job) -> Any:
    return {"pid": os.getpid(), "data": job.data, "name": job.name, "id": job.id}


def fails(job: Job) -> Any:
    def deep_inside_the_child() -> None:
        raise ValueError(f"bad input {job.data.get('n')}")
    deep_inside_the_child()


def unrecoverable(job: Job) -> Any:
    raise UnrecoverableError("cannot ever work")


def sleeps_then_writes(job: Job) -> Any:
    """Record the pid, sleep ``data["sleep"]`` seconds, then write ``data["after"]``."""
    client = _client(job)
    try:
        client.set(job.data["pid_key"], os.getpid())
        time.sleep(job.data["sleep"])
        client.set(job.data["after"], "written")
    finally:
        client.close()
    return "finished"


def slow_first_attempt(job: Job) -> Any:
    """Overruns its timeout on the first attempt, is quick afterwards."""
    if job.attempts_made == 0:
        time.sleep(30)
    return {"attempt": job.attempts_made + 1, "pid": os.getpid()}


def reports(job: Job) -> Any:
    job.update_progress(42)
    job.log("hello from the child")
    job.update_progress({"step": "done"})
    return os.getpid()


def counts_concurrency(job: Job) -> Any:
    """Counts children running at once (``data["key"]``), waits for the test's go."""
    client = _client(job)
    key = job.data["key"]
    try:
        client.eval(ENTER, 2, f"{key}:running", f"{key}:max")
        client.sadd(f"{key}:pids", os.getpid())
        client.blpop([f"{key}:go"], timeout=10)
        client.rpush(f"{key}:go", "go")  # pass the go on to the next child
        client.decr(f"{key}:running")
    finally:
        client.close()
    return os.getpid()


async def async_processor(job: Job) -> Any:
    return None


class Holder:
    @staticmethod
    def nested(job: Job) -> Any:
        return "nested ok"
