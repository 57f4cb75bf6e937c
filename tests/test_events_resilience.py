"""QueueEvents through dropped and hung connections (a real server, real kills)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import _helpers_queue
import pytest
import redis
from _helpers_queue import await_until

from pyqueue import Event, Queue, QueueEvents, RedisConnectionError
from pyqueue._server import RedisServer
from pyqueue.errors import ConfigurationError

sq = _helpers_queue.sq


def kill_reader(client: redis.Redis) -> int:
    """CLIENT KILL every connection that is reading an events stream; the count."""
    killed = 0
    for info in client.client_list():
        if info.get("cmd", "").startswith(("xread", "xinfo")):
            killed += client.client_kill_filter(_id=info["id"])
    return killed


async def wait_and_kill(client: redis.Redis) -> None:
    """Wait until a reader is connected (blocked in XREAD), then kill it."""
    killed: list[int] = []

    def attempt() -> bool:
        killed.append(kill_reader(client))
        return killed[-1] > 0

    await await_until(attempt, what="an events reader to kill")


async def test_callbacks_survive_client_kill(sq: Queue, redis_url: str, queue_name: str,
                                             redis_client: redis.Redis) -> None:
    """Each of 6 events is written right after the reader's connection was
    killed: all 6 still arrive, once each, in order."""
    seen: list[Event] = []
    events = QueueEvents(queue_name, connection=redis_url, block_ms=200)
    events.on("*", seen.append)
    await events.start()
    try:
        for i in range(6):
            await wait_and_kill(redis_client)
            if i % 2 == 0:
                sq.pause()
            else:
                sq.resume()
            await await_until(lambda n=i + 1: len(seen) >= n, what=f"event {i + 1}")
        # Nothing more (no repeat) arrives within a few more reads.
        sq.add("marker", None)
        await await_until(lambda: len(seen) >= 8, what="the marker's events")
    finally:
        await events.close()
    assert [e.name for e in seen] == ["paused", "resumed"] * 3 + ["added", "waiting"]
    assert len({e.id for e in seen}) == 8


async def test_reconnect_warning_is_rate_limited_and_masks_the_password(
        queue_name: str, caplog: Any) -> None:
    password = "s3cret-Pw"
    with RedisServer(extra_args=["--requirepass", password]) as server:
        url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        control = redis.Redis.from_url(url)
        queue = Queue(queue_name, connection=url)
        seen: list[Event] = []
        events = QueueEvents(queue_name, connection=url, block_ms=200)
        events.on("*", seen.append)
        caplog.set_level(logging.WARNING, logger="pyqueue.events")
        try:
            await events.start()
            for _ in range(3):
                await wait_and_kill(control)
            queue.pause()
            await await_until(lambda: seen, what="the event after the kills")
        finally:
            await events.close()
            queue.close()
            control.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "pyqueue.events"]
    failures = [m for m in warnings if "failed (attempt" in m]
    assert failures, warnings
    # Three kills in well under the 5 s interval: one "failed" warning.
    assert len(failures) == 1, failures
    assert f"redis://:***@127.0.0.1:{server.port}/0" in failures[0]
    assert all(password not in m for m in warnings)
    assert [e.name for e in seen] == ["paused"]


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


async def test_start_against_a_server_that_never_answers_raises(
        silent_listener: int, queue_name: str) -> None:
    events = QueueEvents(queue_name, connection=f"redis://127.0.0.1:{silent_listener}/0",
                         block_ms=200, socket_timeout=0.5)
    begun = time.monotonic()
    try:
        with pytest.raises(RedisConnectionError) as info:
            await asyncio.wait_for(events.start(), 10)
    finally:
        await events.close()
    assert time.monotonic() - begun < 3.0
    assert "no answer" in str(info.value)


async def test_a_hung_link_is_detected_and_replaced(fresh_redis: RedisServer,
                                                    queue_name: str, caplog: Any) -> None:
    """SIGSTOP the server while the reader blocks: its read times out past
    block_ms + socket_timeout, it reconnects once the server is back, and
    the events written then arrive."""
    seen: list[Event] = []
    events = QueueEvents(queue_name, connection=fresh_redis.url, block_ms=100,
                         socket_timeout=0.3)
    events.on("*", seen.append)
    caplog.set_level(logging.WARNING, logger="pyqueue.events")
    queue = Queue(queue_name, connection=fresh_redis.url)
    try:
        await events.start()
        fresh_redis.pause()
        try:
            await await_until(lambda: any("failed" in r.getMessage() for r in caplog.records),
                              what="the reader to notice the hung link")
        finally:
            fresh_redis.resume()
        queue.pause()
        await await_until(lambda: seen, timeout=15, what="an event after the hang")
        assert events._task is not None and not events._task.done()
    finally:
        await events.close()
        queue.close()
    assert [e.name for e in seen] == ["paused"]


@pytest.mark.parametrize("kwargs", [{"block_ms": 0}, {"block_ms": -1}, {"block_ms": 1.5},
                                    {"socket_timeout": 0}, {"socket_timeout": "1"},
                                    {"last_event_id": ""}, {"last_event_id": "abc"},
                                    {"last_event_id": "1-x"}, {"last_event_id": 5}])
def test_bad_settings_raise_a_typed_error(kwargs: dict[str, Any], redis_url: str) -> None:
    with pytest.raises(ConfigurationError):
        QueueEvents("q", connection=redis_url, **kwargs)
