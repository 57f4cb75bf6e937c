"""The embedded Redis server: what ``connection=None`` falls back to.

When neither ``$PYQUEUE_REDIS_URL`` nor ``$REDIS_URL`` is set, pyqueue talks
to one detached, persistent (AOF) ``redis-server`` per ``$PYQUEUE_HOME``
(default ``~/.local/share/pyqueue``), listening only on a unix socket and
shared by every process of the user: a producer and a worker started
separately talk to the same server. :func:`embedded_url` starts (or finds)
it, :func:`stop_embedded` stops it; ``pyqueue embedded [--stop]`` does both
from the command line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from ._server import (
    Backoff,
    find_redis_server,
    log_tail,
    looks_like_redis,
    pid_alive,
    ping,
    send_raw,
)
from .errors import ConfigurationError, RedisConnectionError

__all__ = ["default_home", "embedded_url", "stop_embedded"]

#: Longest unix socket path Linux accepts (``sun_path`` is 108 bytes with the NUL).
_MAX_UNIX_PATH = 107

_SHUTDOWN = b"*1\r\n$8\r\nSHUTDOWN\r\n"


def default_home() -> Path:
    """The embedded server's home: ``$PYQUEUE_HOME``, else ``~/.local/share/pyqueue``."""
    env = os.environ.get("PYQUEUE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "pyqueue"


def _home_paths(home: str | Path | None) -> tuple[Path, Path, Path]:
    base = Path(home).expanduser() if home is not None else default_home()
    base = base.absolute()
    sock = base / "redis.sock"
    if len(os.fsencode(sock)) > _MAX_UNIX_PATH:
        raise ConfigurationError(
            f"PYQUEUE_HOME: the embedded server's socket path {str(sock)!r} is longer than "
            f"{_MAX_UNIX_PATH} bytes, the limit for unix sockets; choose a shorter directory"
        )
    return base, sock, base / "redis.pid"


def _socket_url(sock: Path) -> str:
    return f"unix://{quote(str(sock))}?db=0"


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _embedded_pid(pidfile: Path) -> int | None:
    """The pid from the pid file if it is a live redis-server, else None."""
    pid = _read_pid(pidfile)
    if pid is not None and pid_alive(pid) and looks_like_redis(pid):
        return pid
    return None


@contextlib.contextmanager
def _locked(base: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<home>/server.lock``."""
    with (base / "server.lock").open("a") as fh:
        deadline = time.monotonic() + timeout
        backoff = Backoff()
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise RedisConnectionError(
                        f"timed out waiting for {base / 'server.lock'}: another process "
                        "is starting or stopping the embedded Redis server"
                    ) from None
                backoff.wait()
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _wait_ready(sock: Path, pid_of: Iterator[int | None], logfile: Path, timeout: float) -> None:
    """Poll the socket until PONG; fail early if the server's process is gone."""
    deadline = time.monotonic() + timeout
    backoff = Backoff()
    while True:
        if ping(socket.AF_UNIX, str(sock)) == "ok":
            return
        if next(pid_of) is None:
            raise RedisConnectionError(
                f"the embedded redis-server for {sock} exited while starting; "
                f"last lines of {logfile}:\n{log_tail(logfile)}"
            )
        if time.monotonic() >= deadline:
            raise RedisConnectionError(
                f"the embedded redis-server does not answer PING on {sock} after "
                f"{timeout}s; last lines of {logfile}:\n{log_tail(logfile)}"
            )
        backoff.wait()


def _pids(pidfile: Path, grace: float) -> Iterator[int | None]:
    """Yield the live server pid on each step; before the pid file exists
    (redis writes it just after it forks) allow ``grace`` seconds."""
    since = time.monotonic()
    while True:
        pid = _read_pid(pidfile)
        if pid is None:
            yield 0 if time.monotonic() - since < grace else None
        else:
            yield pid if pid_alive(pid) else None


def embedded_url(home: str | Path | None = None, *, timeout: float = 10.0) -> str:
    """Return the URL of the embedded Redis server, starting it if needed.

    The server lives in ``home`` (``$PYQUEUE_HOME``, else
    ``~/.local/share/pyqueue``): data in an append-only file, a log, a pid
    file, and a unix socket ``<home>/redis.sock`` (mode 700, no TCP port).
    It is started detached, in its own session, so it outlives the process
    that started it and every process of the user shares it; an ``flock`` on
    ``<home>/server.lock`` makes concurrent callers start only one. A server
    already answering on the socket is reused; leftovers of a dead one are
    cleaned up. Stop it with :func:`stop_embedded`.

    Returns ``unix://<home>/redis.sock?db=0``. Raises
    :class:`EmbeddedRedisUnavailable` if there is no ``redis-server`` binary
    and :class:`RedisConnectionError` if the server does not come up.
    """
    base, sock, pidfile = _home_paths(home)
    if ping(socket.AF_UNIX, str(sock)) == "ok":
        return _socket_url(sock)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    logfile = base / "redis.log"
    with _locked(base, timeout + 5.0):
        if ping(socket.AF_UNIX, str(sock)) == "ok":
            return _socket_url(sock)
        running = _embedded_pid(pidfile)
        if running is not None:
            # Alive but not (yet) answering: loading its AOF, or hung. Never start
            # a second server on the same data directory.
            _wait_ready(sock, _pids(pidfile, 0.0), logfile, timeout)
            return _socket_url(sock)
        for stale in (sock, pidfile):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        binary = find_redis_server()
        args = [
            binary,
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            # redis forks and its parent exits: the server is not our child, so it
            # never lingers as a zombie in a long-lived producer once it stops.
            "--daemonize", "yes",
            "--pidfile", str(pidfile),
            "--dir", str(base),
            "--logfile", str(logfile),
            "--maxmemory-policy", "noeviction",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
        ]
        launcher = subprocess.run(  # returns as soon as redis has daemonized
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=base,
            start_new_session=True,
            timeout=timeout,
            check=False,
        )
        if launcher.returncode != 0:
            err = launcher.stderr.decode("utf-8", errors="replace").strip()
            raise RedisConnectionError(
                f"could not start the embedded redis-server ({binary}), exit code "
                f"{launcher.returncode}: {err}\nlast lines of {logfile}:\n{log_tail(logfile)}"
            )
        _wait_ready(sock, _pids(pidfile, 2.0), logfile, timeout)
    return _socket_url(sock)


def stop_embedded(home: str | Path | None = None, *, timeout: float = 10.0) -> bool:
    """Stop the embedded Redis server of ``home``; return whether one was running.

    Sends ``SHUTDOWN`` (which flushes the AOF), or SIGTERM if the server does
    not answer, then waits for the process to exit (SIGKILL after
    ``timeout`` seconds).
    """
    base, sock, pidfile = _home_paths(home)
    if not base.is_dir():
        return False
    with _locked(base, timeout + 5.0):
        pid = _embedded_pid(pidfile)
        answered = ping(socket.AF_UNIX, str(sock)) is not None
        if answered:
            send_raw(socket.AF_UNIX, str(sock), _SHUTDOWN, timeout)
        elif pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                os.kill(pid, signal.SIGCONT)
        if pid is not None or answered:
            deadline = time.monotonic() + timeout
            backoff = Backoff()
            while (
                pid_alive(pid) if pid is not None
                else ping(socket.AF_UNIX, str(sock)) is not None
            ):
                if time.monotonic() >= deadline:
                    if pid is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    break
                backoff.wait()
        for leftover in (sock, pidfile):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        return answered or pid is not None
