"""Throwaway real ``redis-server`` processes for tests: :class:`RedisServer`."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from .._server import Backoff, find_redis_server, free_port, log_tail, ping
from ..errors import RedisConnectionError

__all__ = ["RedisServer"]


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
        self._port = free_port() if port is None else port
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
                self._port = free_port()  # another process took the port we picked
            try:
                self._spawn_and_wait(binary, timeout)
            except _PortInUse:
                if attempt == attempts - 1:
                    raise RedisConnectionError(
                        f"redis-server could not bind 127.0.0.1:{self._port}: "
                        f"address in use\n{log_tail(self.logfile)}"
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
        backoff = Backoff()
        while True:
            code = process.poll()
            if code is not None:
                self._process = None
                tail = log_tail(self.logfile)
                new_log = self._read_log_from(log_start)
                if "Address already in use" in new_log and self._auto_port:
                    raise _PortInUse
                raise RedisConnectionError(
                    f"redis-server exited with code {code} while starting on "
                    f"127.0.0.1:{self._port}; last lines of {self.logfile}:\n{tail}"
                )
            # An error reply (NOAUTH with --requirepass) also means it is up.
            if ping(socket.AF_INET, ("127.0.0.1", self._port)) in ("ok", "error"):
                return
            if time.monotonic() >= deadline:
                self._terminate(signal.SIGKILL, 5.0)
                raise RedisConnectionError(
                    f"redis-server on 127.0.0.1:{self._port} did not answer PING within "
                    f"{timeout}s; last lines of {self.logfile}:\n{log_tail(self.logfile)}"
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
