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

from pyqueue import DelayedError, Job, Queue, UnrecoverableError, WaitingChildrenError

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


def delays_itself_once(job: Job) -> Any:
    """First run: ``move_to_delayed`` + ``DelayedError``; the second run returns."""
    if not job.data.get("again"):
        job.update_data({**job.data, "again": True})
        job.move_to_delayed(0.05)
        raise DelayedError()
    return "after the delay"


def sleeps_durably(job: Job) -> Any:
    """A durable ``sleep`` step (moves to delayed, raises DelayedError) between two steps."""
    job.step("before", lambda: "done")
    job.sleep("nap", 0.05)
    return job.step("after", lambda: "woke up")


def sums_its_children(job: Job) -> Any:
    """A step parent: adds two children (``square``), waits for them, sums their values."""
    if job.name == "square":
        return job.data["n"] ** 2

    def add_children() -> bool:
        with Queue(job.queue_name, connection=job.data["url"]) as q:
            for n in (2, 3):
                q.add("square", {"n": n}, parent={"id": job.id, "queue": job.queue_name})
        return True

    job.step("add-children", add_children)
    if job.move_to_waiting_children():
        raise WaitingChildrenError()
    return sum(job.get_children_values().values())


def hangs_once_after_progress(job: Job) -> Any:
    """Reports its pid as progress (through the child's own connection), then
    overruns any timeout on the first attempt; later attempts return at once."""
    job.update_progress({"pid": os.getpid(), "attempt": job.attempts_made + 1})
    if job.attempts_made == 0:
        time.sleep(30)
    return {"attempt": job.attempts_made + 1, "pid": os.getpid()}
