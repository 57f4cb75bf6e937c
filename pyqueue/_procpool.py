"""Running ``def`` processors in child processes (``Worker(execution="process")``).

A thread cannot be stopped, so a ``def`` processor that runs past its
``timeout`` (or whose job is cancelled) keeps its thread busy until it
returns. In process mode each job runs in a child process instead; a job
that must stop is stopped by killing its child, and a fresh child takes the
next job.

The processor is named by its import path (``module:qualname``), never
pickled; a job travels to the child and its result back as JSON, so nothing
but JSON and plain strings crosses the pipe. Inside the child the job is an
ordinary sync ``Job``: ``update_progress``, ``log`` and ``update_data`` go to
Redis directly, fenced by the job's lock token like any worker write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import (
    DelayedError,
    InvalidJobOptionsError,
    JobCancelledError,
    PyQueueError,
    RateLimitError,
    UnrecoverableError,
    WaitingChildrenError,
)

if TYPE_CHECKING:
    from .connection import AsyncClient

_SIGNALS: dict[str, type[Exception]] = {
    "UnrecoverableError": UnrecoverableError,
    "DelayedError": DelayedError,
    "RateLimitError": RateLimitError,
    "JobCancelledError": JobCancelledError,
    "WaitingChildrenError": WaitingChildrenError,
}


class ProcessorError(PyQueueError):
    """An exception raised by a processor in a child process; ``remote_type`` names
    its class and the stack trace is the child's."""

    def __init__(self, message: str, remote_type: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


def import_path(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a module-level function, checked to import back."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or "<" in qualname or module == "__main__":
        raise InvalidJobOptionsError(
            "execution='process' needs a processor defined at module level in an "
            f"importable module (not __main__, not a lambda or closure), got {fn!r}"
        )
    if resolve(f"{module}:{qualname}") is not fn:
        raise InvalidJobOptionsError(f"processor {module}:{qualname} does not import back")
    return f"{module}:{qualname}"


def resolve(path: str) -> Any:
    """The object at ``module:qualname``."""
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _read_frame(fd: int) -> bytes | None:
    """One length-prefixed frame from ``fd`` (blocking); ``None`` at EOF."""
    header = _read_exact(fd, 4)
    if header is None:
        return None
    return _read_exact(fd, int.from_bytes(header, "big"))


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n > 0:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _write_frame(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        view = view[os.write(fd, view):]


def _child_main(read_fd: int, write_fd: int) -> None:
    """The child's loop: read its settings (the first frame: they hold the Redis
    password, so they never go on a command line), then run jobs sent as JSON
    frames and answer with JSON frames."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    first = _read_frame(read_fd)
    if first is None:
        return
    config = json.loads(first)
    for entry in reversed(config.get("path", [])):  # find the processor as the parent did
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from ._keys import QueueKeys
    from ._ops import Clock
    from ._runner import run_sync
    from .job import Binding, Job
    from .logcontext import configure, job_context, reset

    if config.get("log"):  # the parent's pyqueue worker --log-format/--log-level
        configure(**config["log"])

    processor = resolve(config["processor"])
    _write_frame(write_fd, b'{"ready":true}')  # imports done: the parent may start its clock
    # Made on the first job call (a cluster client connects as it is made: a
    # failure is that call's error, and the child stays for the next job).
    client = functools.cache(lambda: _connect(config["connection"]))
    keys = QueueKeys(config["prefix"], config["queue"])
    binding = Binding(keys, Clock(), lambda plan: run_sync(client(), plan), is_async=False)
    while True:
        frame = _read_frame(read_fd)
        if frame is None:
            return
        message = json.loads(frame)
        job = Job(binding, message["id"], message["fields"], message["token"])
        # The job context for log records (pyqueue.logcontext); the pipe round
        # trip per job dwarfs its cost.
        token = job_context(keys.name, job.id, job.name, job.attempts_started or 1)
        undo = [resolve(path)(value) for path, value in message.get("ctx", {}).items()]
        reply: dict[str, Any]
        try:
            reply = {"ok": True, "result": processor(job)}
        except BaseException as exc:
            reply = {
                "ok": False, "type": type(exc).__name__, "message": str(exc),
                "traceback": "".join(traceback.format_exception(type(exc), exc,
                                                                exc.__traceback__)),
            }
        finally:
            for restored in reversed(undo):
                restored()
            reset(token)
        if message["token"] is not None and job.lock_token is None:
            # The job moved itself out of active (move_to_delayed, sleep,
            # move_to_waiting_children): the parent's copy must not finish it.
            reply["moved"] = True
        try:
            data = json.dumps(reply)
        except (TypeError, ValueError) as exc:  # a result JSON cannot hold
            data = json.dumps({"ok": False, "type": type(exc).__name__, "message": str(exc),
                               "traceback": traceback.format_exc(),
                               "moved": reply.get("moved", False)})
        _write_frame(write_fd, data.encode())


class _Child:
    """One child process and the two pipes to it."""

    def __init__(self, config: dict[str, Any]) -> None:
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyqueue._procchild", str(to_child_r), str(from_child_w)],
            pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        _write_frame(self.to_child, json.dumps(config).encode())
        self.buffer = b""

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        for fd in (self.to_child, self.from_child):
            with contextlib.suppress(OSError):
                os.close(fd)

    async def request(self, data: bytes) -> bytes:
        """Send a frame and wait (without blocking the loop) for the answer."""
        _write_frame(self.to_child, data)
        return await self.receive()

    async def receive(self) -> bytes:
        """The next frame from the child."""
        loop = asyncio.get_running_loop()
        while True:
            if len(self.buffer) >= 4:
                size = int.from_bytes(self.buffer[:4], "big")
                if len(self.buffer) >= 4 + size:
                    frame, self.buffer = self.buffer[4:4 + size], self.buffer[4 + size:]
                    return frame
            ready: asyncio.Future[None] = loop.create_future()

            def wake(fut: asyncio.Future[None] = ready) -> None:
                if not fut.done():
                    fut.set_result(None)
            loop.add_reader(self.from_child, wake)
            try:
                await ready
            finally:
                loop.remove_reader(self.from_child)
            chunk = os.read(self.from_child, 65536)
            if not chunk:
                raise PyQueueError(f"processor child exited with {self.process.poll()}")
            self.buffer += chunk


#: Context that follows a job into its child: restorer path ("module:function",
#: imported in the child) -> capture function, called in the parent per job
#: (returns JSON-able data, or None for nothing). In the child the restorer
#: gets that data before the processor runs and returns a function that undoes
#: it afterwards. ``pyqueue.otel`` registers the trace context here.
CONTEXT_CARRIERS: dict[str, Callable[[], Any]] = {}


class ProcessPool:
    """Up to ``size`` child processes, started on demand and reused."""

    def __init__(self, processor: Callable[..., Any], size: int, prefix: str, queue: str,
                 connection: dict[str, Any]) -> None:
        from .logcontext import settings as log_settings  # (imports the worker package)

        self._config = {"processor": import_path(processor), "prefix": prefix, "queue": queue,
                        "connection": connection, "path": [p for p in sys.path if p],
                        "log": log_settings()}
        self._idle: list[_Child] = []
        self._size = size

    async def acquire(self) -> _Child:
        """An idle child, or a new one once it has imported the processor."""
        if self._idle:
            return self._idle.pop()
        child = _Child(self._config)
        try:
            ready = json.loads(await child.receive())
        except BaseException:
            child.kill()
            raise
        if not ready.get("ready"):
            child.kill()
            raise PyQueueError("processor child did not start")
        return child

    async def run(self, child: _Child, job_id: str, fields: dict[str, str],
                  token: str | None, left_active: Callable[[], None] | None = None) -> Any:
        """Run one job in ``child`` (from :meth:`acquire`); raises what the processor
        raised. Cancelling the call (timeout, cancellation, shutdown) kills the child.
        ``left_active`` is called when the job moved itself out of ``active`` in the
        child (``move_to_delayed``, ``sleep``, ``move_to_waiting_children``)."""
        payload: dict[str, Any] = {"id": job_id, "fields": fields, "token": token}
        if CONTEXT_CARRIERS:  # empty unless an extension (pyqueue.otel) registered one
            carried = {path: value for path, capture in CONTEXT_CARRIERS.items()
                       if (value := capture()) is not None}
            if carried:
                payload["ctx"] = carried
        message = json.dumps(payload).encode()
        try:
            reply = json.loads(await child.request(message))
        except BaseException:
            child.kill()
            raise
        if len(self._idle) < self._size:
            self._idle.append(child)
        else:
            child.kill()
        if reply.get("moved") and left_active is not None:
            left_active()
        if reply["ok"]:
            return reply["result"]
        kind = _SIGNALS.get(reply["type"])
        if kind is not None:
            raise kind(reply["message"])
        raise ProcessorError(reply["message"] or reply["type"], reply["type"],
                             reply["traceback"])

    def close(self) -> None:
        """Stop every child."""
        for child in self._idle:
            child.kill()
        self._idle.clear()


def child_connection(client: AsyncClient) -> dict[str, Any]:
    """The plain settings a child needs to reconnect to what ``client`` (the
    worker's asyncio client) reaches: host, port, db, auth, TLS files, or on a
    Redis Cluster the seed nodes and the same settings. They hold the password:
    they travel as the child's first frame, never on its command line."""
    import redis.asyncio.cluster

    from ._cluster import cluster_settings

    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        return {**cluster_settings(client), "_kind": "cluster"}
    pool = client.connection_pool
    kind = {"UnixDomainSocketConnection": "unix", "SSLConnection": "ssl"}.get(
        pool.connection_class.__name__, "tcp")
    wanted = ("host", "port", "db", "username", "password", "ssl", "ssl_cert_reqs",
              "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname",
              "socket_connect_timeout", "socket_timeout", "path")
    settings = {k: v for k, v in pool.connection_kwargs.items() if k in wanted
                and isinstance(v, str | int | float | bool | type(None))}
    settings["_kind"] = kind
    return settings


def _connect(settings: dict[str, Any]) -> Any:
    """The child's sync client from :func:`child_connection`'s settings (a
    cluster client connects here; a single-server one on first use)."""
    import redis

    connection = dict(settings)
    kind = connection.pop("_kind")
    if kind == "cluster":
        from ._cluster import sync_cluster_from_settings

        return sync_cluster_from_settings(connection)
    if kind == "unix":
        return redis.Redis(unix_socket_path=connection.pop("path"), **connection)
    return redis.Redis(ssl=kind == "ssl", **connection)
