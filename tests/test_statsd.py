"""``StatsdHooks`` against a real UDP listener in the test and a real Redis."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from _worker_helpers import wait_for

from pyqueue import AsyncQueue, ConfigurationError, Worker
from pyqueue.statsd import StatsdHooks


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    try:
        yield sock
    finally:
        sock.close()


def receive(sock: socket.socket, until: str) -> list[str]:
    """The lines of the datagrams up to and including the first that contains ``until``."""
    lines: list[str] = []
    while not any(until in line for line in lines):
        lines.extend(sock.recv(65536).decode().split("\n"))
    return lines


def ok(job: Any) -> Any:
    if job.data.get("fail") and job.attempts_started < 2:
        raise ValueError("once")
    return 1


@pytest.mark.parametrize("tags", [True, False])
async def test_statsd_lines_reach_the_listener(listener: socket.socket, redis_url: str,
                                               queue_name: str, tags: bool) -> None:
    port = listener.getsockname()[1]
    hooks = StatsdHooks("127.0.0.1", port, tags=tags, constant_tags={"env": "test"})
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        worker = Worker(queue_name, ok, connection=redis_url, hooks=[hooks], log_jobs=False,
                        autorun=False)
        await worker.start()
        try:
            await q.add("a", {})
            await wait_for(lambda: worker.jobs_processed >= 1, what="first job")
            first = receive(listener, "jobs.completed")
            await q.add("b", {"fail": True}, attempts=2)
            await wait_for(lambda: worker.jobs_processed >= 2, what="second job")
            second = receive(listener, "jobs.completed")
        finally:
            await worker.close()
    if tags:
        suffix = f"|#queue:{queue_name},env:test"
        assert f"pyqueue.jobs.completed:1|c{suffix}" in first
        assert f"pyqueue.worker.active:0|g{suffix}" in first  # its value at the send
        assert f"pyqueue.jobs.retried:1|c{suffix}" in second
        durations = [line for line in first + second if line.startswith("pyqueue.job.duration:")]
        assert len(durations) == 3 and all(line.endswith(f"|ms{suffix}") for line in durations)
    else:
        assert f"pyqueue.{queue_name}.jobs.completed:1|c" in first
        assert f"pyqueue.{queue_name}.jobs.retried:1|c" in second


def test_bad_statsd_settings() -> None:
    with pytest.raises(ConfigurationError, match="port"):
        StatsdHooks(port=0)
    with pytest.raises(ConfigurationError, match="prefix"):
        StatsdHooks(prefix="")


async def test_one_loop_turn_shares_datagrams_of_at_most_1432_bytes(
        listener: socket.socket) -> None:
    hooks = StatsdHooks("127.0.0.1", listener.getsockname()[1], tags=False)
    try:
        for i in range(100):  # what 50 jobs finishing in one loop turn send
            hooks._send("q", f"custom.m{i}", i, "c")
        await asyncio.sleep(0)  # the turn ends: one flush
        got: list[str] = []
        datagrams = 0
        while len(got) < 100:
            datagram = listener.recv(65536)
            datagrams += 1
            assert len(datagram) <= 1432
            got.extend(datagram.decode().split("\n"))
    finally:
        hooks._socket.close()
    assert got == [f"pyqueue.q.custom.m{i}:{i}|c" for i in range(100)]
    assert datagrams < 10
