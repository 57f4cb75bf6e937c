"""``pyqueue.testing``: the throwaway ``RedisServer`` and the pytest plugin."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

from pyqueue import AsyncQueue, Queue, _embedded, _server
from pyqueue.testing import RedisServer
from pyqueue.testing.server import RedisServer as ServerClass

REPO = Path(__file__).resolve().parents[1]


def refuses(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_redis_server_context_manager_is_a_throwaway_server() -> None:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        try:
            assert client.ping()
            assert server.url == f"redis://127.0.0.1:{server.port}/0"
            assert client.config_get("save")["save"] == ""
            assert client.config_get("appendonly")["appendonly"] == "no"
            assert client.config_get("bind")["bind"] == "127.0.0.1"
            pid = server.pid
            assert pid is not None
        finally:
            client.close()
    assert server.pid is None
    assert not Path(f"/proc/{pid}").exists() or "redis" not in \
        Path(f"/proc/{pid}/comm").read_text(errors="replace")
    assert refuses(server.port)
    assert not server.directory.exists()


def test_redis_server_start_and_stop_explicitly() -> None:
    first, second = RedisServer(), RedisServer()
    first.start()
    second.start()
    try:
        assert first.port != second.port
        assert first.running and second.running
        first.start()  # already running: nothing happens
    finally:
        first.stop()
        second.stop()
        second.stop()  # safe twice
    assert refuses(first.port) and refuses(second.port)


def test_old_import_paths_still_work() -> None:
    assert _server.RedisServer is RedisServer is ServerClass
    assert _server.embedded_url is _embedded.embedded_url
    assert _server.stop_embedded is _embedded.stop_embedded
    with pytest.raises(AttributeError):
        _server.no_such_name  # noqa: B018


def test_pyqueue_queue_fixture(pyqueue_queue: Queue, pyqueue_redis_url: str) -> None:
    job = pyqueue_queue.add("hello", {"n": 1})
    assert pyqueue_queue.get_job_counts("waiting") == {"waiting": 1}
    assert pyqueue_queue.get_job(job.id) is not None
    assert pyqueue_queue.name.startswith("pyqueue-test-")
    client = redis.Redis.from_url(pyqueue_redis_url)
    try:
        assert client.exists(f"bull:{pyqueue_queue.name}:wait")
    finally:
        client.close()


async def test_pyqueue_async_queue_fixture(pyqueue_async_queue: AsyncQueue,
                                           pyqueue_queue: Queue) -> None:
    await pyqueue_async_queue.add("a", None)
    assert await pyqueue_async_queue.get_job_counts("waiting") == {"waiting": 1}
    assert pyqueue_async_queue.name != pyqueue_queue.name  # one name per fixture


USER_TESTS = '''
import redis


def test_sync(pyqueue_queue, pyqueue_redis_url):
    with open("url.txt", "w") as fh:
        fh.write(pyqueue_redis_url)
    with open("queue.txt", "w") as fh:
        fh.write(pyqueue_queue.name)
    pyqueue_queue.add("x", {"a": 1})
    assert pyqueue_queue.get_job_counts("waiting") == {"waiting": 1}


async def test_async(pyqueue_async_queue):
    await pyqueue_async_queue.add("y", None)
    assert await pyqueue_async_queue.get_job_counts("waiting") == {"waiting": 1}
'''


def run_user_suite(tmp_path: Path, *args: str, env_extra: dict[str, str] | None = None
                   ) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYQUEUE_TEST_REDIS_URL", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_plugin_is_registered_by_its_entry_point_in_a_user_project(tmp_path: Path) -> None:
    """A user's suite gets the fixtures without any conftest: a session server,
    stopped at the end, and queues whose keys are removed after each test."""
    result = run_user_suite(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    url = (tmp_path / "url.txt").read_text()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert refuses(port)  # the session's server was stopped


def test_plugin_uses_the_server_named_by_the_environment(tmp_path: Path,
                                                          redis_url: str) -> None:
    result = run_user_suite(tmp_path, env_extra={"PYQUEUE_TEST_REDIS_URL": redis_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "url.txt").read_text() == redis_url
    name = (tmp_path / "queue.txt").read_text()
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.keys(f"bull:{name}:*") == []  # obliterated after the test
    finally:
        client.close()


def test_plugin_can_be_turned_off(tmp_path: Path) -> None:
    result = run_user_suite(tmp_path, "-p", "no:pyqueue")
    assert result.returncode != 0
    assert "fixture 'pyqueue_queue' not found" in result.stdout


@pytest.mark.parametrize("autoload", [True, False])
def test_plugin_loads_with_dash_p_pyqueue_testing(tmp_path: Path, autoload: bool) -> None:
    """``pytest -p pyqueue.testing`` gives the fixtures with plugin autoloading
    off, and does not clash with the entry point when it is on."""
    extra = {} if autoload else {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    args = ["-p", "pyqueue.testing"] + ([] if autoload else ["-p", "pytest_asyncio.plugin"])
    result = run_user_suite(tmp_path, *args, env_extra=extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


# --------------------------------------------------------------------------- run_until_idle


def test_run_until_idle_runs_every_due_job_with_retries(redis_url: str, queue_name: str) -> None:
    from pyqueue import Job
    from pyqueue.testing import run_until_idle

    tries: dict[str, int] = {}

    def process(job: Job) -> str:
        tries[job.id] = tries.get(job.id, 0) + 1
        if job.name == "flaky" and tries[job.id] == 1:
            raise ValueError("first try fails")
        return job.name.upper()

    with Queue(queue_name, connection=redis_url) as queue:
        plain = queue.add("plain", {})
        flaky = queue.add("flaky", {}, attempts=2)  # retried at once: no backoff
        later = queue.add("later", {}, delay=3600)
        done = run_until_idle(queue_name, process, connection=redis_url)
        assert sorted(job.id for job in done) == sorted([plain.id, flaky.id])
        assert tries[flaky.id] == 2
        assert queue.get_job_state(later.id) == "delayed"  # not due: left alone
        assert queue.get_job(flaky.id).return_value == "FLAKY"  # type: ignore[union-attr]


def test_run_until_idle_raises_the_first_job_that_failed_for_good(redis_url: str,
                                                                 queue_name: str) -> None:
    from pyqueue import JobFailedError
    from pyqueue.testing import run_until_idle

    def process(job: object) -> None:
        raise KeyError("no such customer")

    with Queue(queue_name, connection=redis_url) as queue:
        job = queue.add("bill", {})
        with pytest.raises(JobFailedError) as caught:
            run_until_idle(queue_name, process, connection=redis_url)
        assert isinstance(caught.value.__cause__, KeyError)
        assert job.id in str(caught.value)
        assert queue.get_job_state(job.id) == "failed"
        queue.add("bill", {})
        done = run_until_idle(queue_name, process, connection=redis_url,
                              raise_on_failure=False)
        assert len(done) == 1 and done[0].failed_reason == "'no such customer'"


async def test_run_until_idle_inside_a_loop_points_to_the_async_form(
        redis_url: str, queue_name: str) -> None:
    from pyqueue import ConfigurationError
    from pyqueue.testing import run_until_idle, run_until_idle_async

    async def process(job: object) -> int:
        return 1

    with pytest.raises(ConfigurationError, match="run_until_idle_async"):
        run_until_idle(queue_name, process, connection=redis_url)
    async with AsyncQueue(queue_name, connection=redis_url) as queue:
        await queue.add("one", {})
        done = await run_until_idle_async(queue_name, process, connection=redis_url)
    assert [job.name for job in done] == ["one"]
