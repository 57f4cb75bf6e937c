"""Fixtures for the BullMQ interop tests: the real ``bullmq@6.7.0`` under Node.

``bull(command, **args)`` runs ``node bullmq_side.mjs <command> '<json>'``
against the session's Redis and returns its one JSON line as a dict;
``bull.aio(...)`` is the same from a coroutine (the subprocess runs in a
thread, so a pyqueue worker on the event loop keeps running meanwhile), and
``bull.many([(command, args), ...])`` runs several calls in parallel (each
Node start costs ~0.5-1 s). The session installs ``node_modules`` with
``npm ci`` when it is missing and skips these tests when ``node`` is absent.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "bullmq_side.mjs"
DEFAULT_TIMEOUT = 60.0  # seconds for one harness run (the harness has its own watchdog)
PARALLEL = 4


@pytest.fixture(scope="session")
def node_harness() -> str:
    """The ``node`` executable, with ``tests/interop/node_modules`` installed."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("interop tests need Node.js: `node` is not on PATH")
    wanted = json.loads((HERE / "package.json").read_text())["dependencies"]
    if not all((HERE / "node_modules" / name / "package.json").exists() for name in wanted):
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("interop tests need npm to install tests/interop/node_modules "
                        "(`npm` is not on PATH)")
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"`npm ci` in {HERE} failed (exit {proc.returncode}):\n"
                        f"{proc.stdout}\n{proc.stderr}")
    return node


class Bull:
    """Runs ``bullmq_side.mjs`` commands against one Redis server."""

    def __init__(self, node: str, redis_url: str, harness: Path = HARNESS) -> None:
        self.node = node
        self.redis_url = redis_url
        self.harness = harness

    def __call__(self, command: str, *, timeout: float = DEFAULT_TIMEOUT,
                 **args: Any) -> dict[str, Any]:
        payload = {"redis": self.redis_url, **args}
        argv = [self.node, str(self.harness), command, json.dumps(payload)]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  cwd=HERE)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{self.harness.name} {command} {payload} timed out after {timeout} s; "
                        f"stderr:\n{exc.stderr}")
        if proc.returncode != 0:
            pytest.fail(f"{self.harness.name} {command} {payload} exited {proc.returncode}\n"
                        f"stdout: {proc.stdout}\nstderr:\n{proc.stderr}")
        lines = proc.stdout.strip().splitlines()
        if not lines:
            pytest.fail(f"{self.harness.name} {command} printed nothing; stderr:\n{proc.stderr}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    async def aio(self, command: str, **args: Any) -> dict[str, Any]:
        """``bull(...)`` without blocking the event loop."""
        return await asyncio.to_thread(self, command, **args)

    def many(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Several harness runs in parallel; results in the order of ``calls``."""
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = [pool.submit(self, command, **args) for command, args in calls]
            return [f.result() for f in futures]

    async def amany(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """``many`` without blocking the event loop."""
        return await asyncio.to_thread(self.many, calls)


@pytest.fixture
def bull(node_harness: str, redis_url: str) -> Bull:
    """``bull(command, **args) -> dict``: the BullMQ side, on the test Redis."""
    return Bull(node_harness, redis_url)


@pytest.fixture
def bull_flow(node_harness: str, redis_url: str) -> Bull:
    """``bull_flow(command, **args) -> dict``: ``bullmq_flow.mjs`` (FlowProducer and
    flow-aware workers), on the test Redis."""
    return Bull(node_harness, redis_url, HERE / "bullmq_flow.mjs")
