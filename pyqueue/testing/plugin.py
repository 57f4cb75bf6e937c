"""pytest plugin of pyqueue: a real Redis and queues for your tests.

Registered automatically through the ``pytest11`` entry point ``pyqueue``
(``pytest -p no:pyqueue`` turns it off; with plugin autoloading disabled,
load it with ``pytest -p pyqueue.testing.plugin``).

Fixtures:

* ``pyqueue_redis_url`` (session): the URL of a throwaway
  :class:`~pyqueue.testing.RedisServer` started for the session and stopped
  at its end, or ``$PYQUEUE_TEST_REDIS_URL`` when set (a server you run).
* ``pyqueue_queue``: a sync :class:`~pyqueue.Queue` on a queue name unique
  to the test; closed, and its keys removed, afterwards.
* ``pyqueue_async_queue``: the same as an :class:`~pyqueue.AsyncQueue` (needs
  ``pytest-asyncio``; the fixture runs in the test's event loop).
* ``pyqueue_redis_cluster`` (session): a throwaway
  :class:`~pyqueue.testing.LocalRedisCluster` (3 primaries, 1 replica each),
  started the first time a test asks for it and stopped at the session's end
  (``.url`` is its ``redis+cluster://`` URL; queue names need a hash tag).
* ``pyqueue_time_travel``: a :class:`~pyqueue.testing.TimeTravel` on
  ``pyqueue_queue`` (``pyqueue_time_travel.advance(60)`` promotes what is
  due within the next minute).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest

from .. import AsyncQueue, Queue
from ..errors import RedisConnectionError
from .cluster import LocalRedisCluster
from .server import RedisServer
from .timetravel import TimeTravel

#: Environment variable naming a Redis server to use instead of starting one.
URL_ENV = "PYQUEUE_TEST_REDIS_URL"


def _unique_name() -> str:
    return f"pyqueue-test-{uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def pyqueue_redis_url() -> Iterator[str]:
    """URL of the Redis server for this test session (see the module docs)."""
    url = os.environ.get(URL_ENV)
    if url:
        yield url
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture(scope="session")
def pyqueue_redis_cluster() -> Iterator[LocalRedisCluster]:
    """A local Redis Cluster for this test session (see the module docs)."""
    with LocalRedisCluster() as cluster:
        yield cluster


@pytest.fixture
def pyqueue_queue(pyqueue_redis_url: str) -> Iterator[Queue]:
    """A sync ``Queue`` on a fresh queue name; obliterated after the test."""
    queue = Queue(_unique_name(), connection=pyqueue_redis_url)
    try:
        yield queue
        with contextlib.suppress(RedisConnectionError):  # the test may have stopped Redis
            queue.obliterate(force=True)
    finally:
        queue.close()


@pytest.fixture
def pyqueue_time_travel(pyqueue_queue: Queue) -> TimeTravel[Queue]:
    """Time control for ``pyqueue_queue``'s delayed jobs (see ``TimeTravel``)."""
    return TimeTravel(pyqueue_queue)


def _async_fixture(func: Callable[..., Any]) -> Any:
    """``pytest_asyncio.fixture`` when pytest-asyncio is installed; else plain
    ``pytest.fixture``, with which pytest itself reports what is missing."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - depends on the environment
        return pytest.fixture(func)
    return pytest_asyncio.fixture(loop_scope="function")(func)


@_async_fixture
async def pyqueue_async_queue(pyqueue_redis_url: str) -> AsyncIterator[AsyncQueue]:
    """An ``AsyncQueue`` on a fresh queue name; obliterated after the test."""
    queue = AsyncQueue(_unique_name(), connection=pyqueue_redis_url)
    try:
        yield queue
        with contextlib.suppress(RedisConnectionError):
            await queue.obliterate(force=True)
    finally:
        await queue.close()
