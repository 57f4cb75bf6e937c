"""``pyqueue demo``: headings per part, one clock, the embedded-server notice, Ctrl-C."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

PART1 = "== Part 1 of 2: jobs"
PART2 = "== Part 2 of 2: the email worker"
STOP_HINT = "pyqueue embedded --stop"
TIMEOUT = 90.0


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PYQUEUE_REDIS_URL")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def _pyqueue(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyqueue.cli", *args], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.fixture
def home() -> Iterator[Path]:
    """A short $PYQUEUE_HOME (unix socket paths are limited); its server is stopped after."""
    with tempfile.TemporaryDirectory(prefix="pqh") as path:
        try:
            yield Path(path)
        finally:
            _pyqueue("embedded", "--stop", env=_env(PYQUEUE_HOME=path))


def test_demo_has_a_heading_per_part_and_one_clock(redis_url: str, tmp_path: Path) -> None:
    done = _pyqueue("demo", env=_env(REDIS_URL=redis_url, PYQUEUE_HOME=str(tmp_path)))
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in done.stderr
    assert out.index(PART1) < out.index(PART2)
    part1, part2 = out.split(PART2)
    clock1 = [float(t) for t in re.findall(r"^\[\s*([\d.]+)s\]", part1, re.MULTILINE)]
    clock2 = [float(t) for t in re.findall(r"^\[\s*([\d.]+)s\]", part2, re.MULTILINE)]
    assert clock1 and clock2
    assert clock2[0] >= clock1[-1] > 0, "part 2 continues part 1's clock"
    assert "embedded" not in out  # a server of the user's own: nothing to say about it


def test_demo_on_the_embedded_server_says_so_and_stops_cleanly_on_ctrl_c(home: Path) -> None:
    env = _env(PYQUEUE_HOME=str(home))
    proc = subprocess.Popen([sys.executable, "-m", "pyqueue.cli", "demo"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = _read_until(proc, b"will retry flaky-webhook")
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out = (seen + rest).decode()
    where = out + err.decode()
    assert proc.returncode == 130, where
    assert "Traceback" not in where
    assert "embedded redis-server" in out and str(home) in out
    assert "keeps running" in out and STOP_HINT in out
    assert "interrupted" in out
    # The interrupted demo removed its queue from the embedded server.
    queue = re.search(r"queue '(demo-[0-9a-f]+)'", out)
    assert queue is not None, out
    client = redis.Redis(unix_socket_path=str(home / "redis.sock"))
    try:
        assert client.keys(f"bull:{queue.group(1)}:*") == []
    finally:
        client.close()
    stopped = _pyqueue("embedded", "--stop", env=env)
    assert stopped.stdout.strip() == "stopped"


def test_email_demo_without_aiosmtpd_names_the_extra() -> None:
    code = ("import sys; sys.modules['aiosmtpd'] = None\n"
            "from pyqueue.email.demo import _smtp_controller\n"
            "try:\n    _smtp_controller()\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=TIMEOUT, check=True).stdout
    assert "pip install 'pyqueue-redis[demo]'" in out


def _read_until(proc: subprocess.Popen[bytes], text: bytes) -> bytes:
    """Read ``proc``'s stdout until it contains ``text`` (or fail at the deadline)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + TIMEOUT
    seen = b""
    while text not in seen:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"never printed {text!r}; got:\n{seen.decode()}")
        seen += chunk
    return seen
