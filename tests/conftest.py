"""Shared fixtures: real Redis servers that the test session starts itself.

Unless ``PYQUEUE_TEST_REDIS_URL`` names a server to use, the session starts
one throwaway ``redis-server`` (free port on 127.0.0.1, no persistence) and
stops it at the end. Tests isolate from each other by queue name
(``queue_name``), not by flushing the server. Tests that kill, pause or
restart Redis take ``fresh_redis``: a server of their own.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import pytest
import redis

from pyqueue import AsyncQueue
from pyqueue.testing import RedisServer

TEST_URL_ENV = "PYQUEUE_TEST_REDIS_URL"

# A shell starts a background job (`./scripts/test.sh &`, nohup, some CI
# runners) with SIGINT ignored, and every process the tests start would
# inherit that: the tests that stop a worker, the demo or the dashboard with
# ctrl-c (SIGINT) would wait for it in vain. The suite runs as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | None]:
    """The session's own Redis server, or ``None`` when ``$PYQUEUE_TEST_REDIS_URL`` is set."""
    if os.environ.get(TEST_URL_ENV):
        yield None
        return
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> str:
    """URL of the Redis server the tests use."""
    if redis_server is None:
        return os.environ[TEST_URL_ENV]
    return redis_server.url


@pytest.fixture
def queue_name() -> str:
    """A queue name unique to this test."""
    return f"t{uuid4().hex[:12]}"


@pytest.fixture
async def async_queue(redis_url: str, queue_name: str) -> AsyncIterator[AsyncQueue]:
    """An ``AsyncQueue`` named ``queue_name`` on the test server, closed after the test."""
    async with AsyncQueue(queue_name, connection=redis_url) as queue:
        yield queue


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A sync client (bytes replies) to the test server, closed after the test."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A dedicated, started, throwaway server for tests that kill or restart Redis."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
