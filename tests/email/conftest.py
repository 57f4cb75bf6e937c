"""Fixtures for the email tests: real SMTP servers on loopback (aiosmtpd)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from _smtp import SENDER, SMTPServer, make_cert

from pyqueue import Queue
from pyqueue.email import EmailWorker, SMTPSettings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # aiosmtpd warns (per connection, in its thread) when AUTH is offered
    # without TLS: the plain-AUTH and implicit-TLS test servers do that on purpose.
    mark = pytest.mark.filterwarnings(
        "ignore:Requiring AUTH while not requiring TLS:UserWarning")
    for item in items:
        if "/email/" in str(item.path):
            item.add_marker(mark)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A plain SMTP server (no TLS, no AUTH), as for local development."""
    server = SMTPServer("plain").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def servers() -> Iterator[Any]:
    """``servers(mode, **kwargs)``: start an extra SMTPServer, stopped after the test
    (request this fixture before ``started`` so workers close first)."""
    made: list[SMTPServer] = []

    def make(mode: str = "plain", **kwargs: Any) -> SMTPServer:
        server = SMTPServer(mode, **kwargs).start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def plain_settings(smtp_server: SMTPServer) -> SMTPSettings:
    return SMTPSettings(host="127.0.0.1", port=smtp_server.port, starttls=False, tls=False,
                        from_address=SENDER, timeout=5)


@pytest.fixture
def queue(redis_url: str, queue_name: str) -> Iterator[Queue]:
    with Queue(queue_name, connection=redis_url) as q:
        yield q
        q.obliterate(force=True)
        with Queue(f"{queue_name}-dlq", connection=q.client) as dlq:
            dlq.obliterate(force=True)
        client: Any = q.client
        for key in client.scan_iter(match=f"bull:{queue_name}:pq:*"):
            client.delete(key)


@pytest.fixture
def make_worker(redis_url: str, queue_name: str,
                plain_settings: SMTPSettings) -> Iterator[Any]:
    """``make_worker(**options)``: an EmailWorker (not started) on the test queue."""
    made: list[EmailWorker] = []

    def make(**options: Any) -> EmailWorker:
        options.setdefault("smtp", plain_settings)
        options.setdefault("drain_delay", 0.5)
        worker = EmailWorker(queue_name, connection=redis_url, autorun=False, **options)
        made.append(worker)
        return worker

    yield make


@pytest.fixture
async def started(make_worker: Any) -> AsyncIterator[Any]:
    """``await started(**options)``: a running EmailWorker, closed after the test."""
    workers: list[EmailWorker] = []

    async def start(**options: Any) -> EmailWorker:
        worker: EmailWorker = make_worker(**options)
        await worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        await worker.close(force=True)


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()
