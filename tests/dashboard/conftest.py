"""Fixtures for the dashboard tests: the app served by a real uvicorn on a free loopback port
(in a thread), an HTTP client, and Debian's chromium driven by Playwright.

``serve(app)`` binds the socket before uvicorn starts, so a request made
right after it returns waits in the listen backlog instead of racing the
start. The browser is launched once per module from the system's
``chromium`` (Playwright's own browser download cannot work offline); the
browser tests are skipped, saying why, only when no chromium is installed.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
import uvicorn

from pyqueue import Queue

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


class Served:
    """One app served on ``url`` until ``stop()``."""

    def __init__(self, app: Any, root_path: str = "") -> None:
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say
        # so (with proto 0 every keep-alive request waits ~40 ms for Nagle).
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, ws="none",
                                lifespan="on", root_path=root_path)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """``serve(app, root_path="") -> Served``: serves the app on a free port; stopped
    after the test."""
    started: list[Served] = []

    def start(app: Any, root_path: str = "") -> Served:
        served = Served(app, root_path)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own: its overview shows only its queues."""
    return f"d{uuid4().hex[:10]}"


@pytest.fixture
def make_queue(redis_url: str, prefix: str) -> Iterator[Callable[[str], Queue]]:
    """``make_queue(name) -> Queue`` under the test's prefix, closed afterwards."""
    opened: list[Queue] = []

    def make(name: str) -> Queue:
        queue = Queue(name, connection=redis_url, prefix=prefix)
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()


def csrf_of(page: str) -> str:
    """The CSRF token of a rendered page's forms."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def client(base_url: str, **kwargs: Any) -> httpx.Client:
    """An HTTP client for a served dashboard (keeps cookies, does not follow redirects)."""
    return httpx.Client(base_url=base_url, timeout=10, follow_redirects=False, **kwargs)


@pytest.fixture(scope="module")
def chromium_path() -> str:
    """The system chromium, or a skip saying how to install it."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("browser tests need Debian's chromium (scripts/setup.sh installs it: "
                "apt-get install chromium); none found on PATH")


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """A headless chromium driven by Playwright, for the module."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="pip install playwright (in the dev extra)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path,
                                              args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
