"""``pyqueue dashboard``: serves the app, takes basic auth from the flag or the environment,
and warns loudly when it listens beyond loopback without authentication."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from pyqueue import Queue
from pyqueue.cli import build_parser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def dashboard_process(*args: str, env: dict[str, str] | None = None
                      ) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pyqueue.cli", "dashboard", "--port",
                             str(port), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:  # wait until it answers (or died)
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.05)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dashboard_help_names_its_options() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices["dashboard"].format_help()  # type: ignore[attr-defined]
    for option in ("--host", "--port", "--read-only", "--basic-auth", "--queue",
                   "--root-path", "--redis", "--prefix"):
        assert option in text


def test_serves_with_basic_auth_from_the_environment(redis_url: str) -> None:
    with dashboard_process("--redis", redis_url,
                           env={"PYQUEUE_DASHBOARD_AUTH": "ops:pa55"}) as (proc, url):
        assert httpx.get(url + "/").status_code == 401
        assert httpx.get(url + "/", auth=("ops", "pa55")).status_code == 200
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "pyqueue dashboard: http://127.0.0.1:" in err
    assert "WITHOUT AUTHENTICATION" not in err and "pa55" not in err


def test_read_only_flag(redis_url: str) -> None:
    with dashboard_process("--redis", redis_url, "--read-only") as (proc, url):
        page = httpx.get(url + "/").text
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert "read-only" in page and "(read-only)" in err


def test_listening_on_every_address_without_auth_warns_loudly(redis_url: str) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pyqueue.cli", "dashboard", "--host",
                             "0.0.0.0", "--port", str(port), "--redis", redis_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 20
        assert proc.stderr is not None
        while not any("pyqueue dashboard:" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None
            lines.append(proc.stderr.readline())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    text = "".join(lines)
    assert "WITHOUT AUTHENTICATION" in text and "0.0.0.0" in text


def test_a_bad_basic_auth_is_a_usage_error(redis_url: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pyqueue.cli", "dashboard", "--redis",
                           redis_url, "--basic-auth", "nopassword"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and "USER:PASSWORD" in proc.stderr


def test_demo_with_the_dashboard_shows_jobs_moving(redis_url: str) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pyqueue.cli", "demo", "--dashboard",
                             "--port", str(port), "--redis", redis_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"dashboard: http://127.0.0.1:{port}/" in line, line + (proc.stderr.read()
                                                                      if proc.poll() else "")
        queue = line.split("queue '")[1].split("'")[0]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # jobs complete while we watch
            page = httpx.get(f"{url}/queues/{queue}?state=completed", timeout=5).text
            if 'data-job-id="' in page:
                break
            assert time.monotonic() < deadline, page
            time.sleep(0.1)
        assert f'data-queue="{queue}"' in httpx.get(url + "/", timeout=5).text
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "removed" in out
    with Queue(queue, connection=redis_url) as left:
        assert left.get_job_counts() == dict.fromkeys(left.get_job_counts(), 0)
