"""Fixtures of the fault-injection suite: servers it may kill, and scenarios.

Every server here is a throwaway ``RedisServer`` of the test's own (never the
session's shared one), stopped at the end of the test; every worker process
a scenario started is SIGKILLed and reaped at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Scenario

from pyqueue._server import RedisServer


@pytest.fixture
def make_server() -> Iterator[Callable[..., RedisServer]]:
    """Start a dedicated server: ``make_server(persistent=..., extra_args=[...])``."""
    servers: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., RedisServer]) -> RedisServer:
    """A dedicated, non-persistent server for one scenario."""
    return make_server()


@pytest.fixture
def scenario(server: RedisServer, tmp_path: Path) -> Iterator[Scenario]:
    """A scenario (queue, ledger, worker processes) on ``server``."""
    sc = Scenario(server.url, tmp_path)
    try:
        yield sc
    finally:
        sc.close()
