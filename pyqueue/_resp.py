"""An auto-pipelining Redis connection for the worker's hot path.

redis-py's asyncio client checks a connection out of its pool and waits for
each reply before the next command may use that connection; with a hundred
job slots finishing at once, most of a worker's CPU goes there. This
connection is shared by all the worker's slots: commands issued in the same
event-loop iteration are written in one ``send``, replies are parsed by
``hiredis`` and handed back in order. One worker, one socket, no locks.

It speaks RESP2 and does only what the hot path needs: the handshake (AUTH,
SELECT, CLIENT SETNAME), TCP, unix sockets and TLS taken from the settings
of the redis-py client it stands in for. Error replies become the same
exception classes redis-py raises, so the rest of pyqueue cannot tell the
difference. A command unanswered for ``timeout`` seconds closes the
connection (a hung or blackholed peer) and fails every pending command with
``redis.exceptions.ConnectionError``; the next command reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import hiredis
import redis
import redis.asyncio
import redis.exceptions as rexc
from redis._parsers import BaseParser

from ._resp_encode import encode, encode_args

#: Connection settings of a redis-py client that this module understands.
_HANDLED = {
    "host", "port", "path", "db", "username", "password", "client_name",
    "socket_connect_timeout", "socket_timeout", "socket_keepalive", "socket_keepalive_options",
    "health_check_interval", "retry_on_timeout", "retry_on_error", "retry", "decode_responses",
    "encoding", "encoding_errors", "protocol", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path",
    "ssl_ca_data", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname", "ssl_password",
    "himport_registry", "maint_notifications_pool_handler", "maint_notifications_config",
    "orig_host_address", "orig_socket_timeout", "orig_socket_connect_timeout",
    "lib_name", "lib_version", "socket_type", "cache", "cache_config", "event_dispatcher",
    "driver_info", "legacy_responses", "socket_read_size",
}
#: Settings understood only when unset: a credential provider or a custom
#: connect function means the client does something these connections do not.
_UNSET_ONLY = ("credential_provider", "redis_connect_func")


@dataclass(frozen=True)
class Options:
    """Where and how to connect."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    client_name: str | None = None
    ssl_context: ssl.SSLContext | None = None
    connect_timeout: float = 5.0


def options_from(client: redis.asyncio.Redis | redis.Redis,
                 client_name: str | None = None) -> Options | None:
    """The settings of a redis-py client (sync or asyncio), or ``None`` when it
    uses something these connections do not support (then keep using redis-py)."""
    pool = client.connection_pool
    kwargs: dict[str, Any] = dict(pool.connection_kwargs)
    if any(kwargs.pop(name, None) is not None for name in _UNSET_ONLY):
        return None
    if set(kwargs) - _HANDLED or kwargs.get("protocol") not in (None, 2, "2"):
        return None
    if kwargs.get("cache") is not None:
        return None
    cls_name = pool.connection_class.__name__
    context = None
    if cls_name == "SSLConnection":
        context = _ssl_context(kwargs)
    elif cls_name not in ("Connection", "UnixDomainSocketConnection"):
        return None
    return Options(
        host=str(kwargs.get("host") or "127.0.0.1"),
        port=int(kwargs.get("port") or 6379),
        path=kwargs.get("path") if cls_name == "UnixDomainSocketConnection" else None,
        db=int(kwargs.get("db") or 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        client_name=client_name or kwargs.get("client_name"),
        ssl_context=context,
        connect_timeout=float(kwargs.get("socket_connect_timeout") or 5.0),
    )


def _ssl_context(kwargs: dict[str, Any]) -> ssl.SSLContext:
    reqs = kwargs.get("ssl_cert_reqs", "required")
    if isinstance(reqs, str):
        reqs = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                "required": ssl.CERT_REQUIRED}[reqs.lower()]
    context = ssl.create_default_context(cafile=kwargs.get("ssl_ca_certs"),
                                         capath=kwargs.get("ssl_ca_path"),
                                         cadata=kwargs.get("ssl_ca_data"))
    check = kwargs.get("ssl_check_hostname")
    context.check_hostname = bool(check if check is not None else reqs != ssl.CERT_NONE) \
        and reqs != ssl.CERT_NONE
    context.verify_mode = reqs
    if kwargs.get("ssl_certfile"):
        context.load_cert_chain(kwargs["ssl_certfile"], kwargs.get("ssl_keyfile"),
                                kwargs.get("ssl_password"))
    return context


def encode_command(command: Any) -> bytes:
    """A ``_plan.Command`` (or a plain sequence of words) in RESP."""
    words = getattr(command, "words", None)
    if words is None:
        return encode(command)
    if command.head is not None:
        tail = command.tail
        head: bytes = command.head
        return b"*%d\r\n" % (command.head_count + len(tail)) + head + encode_args(tail)
    return encode(words())


def _error(reply: Exception) -> Exception:
    parse: Any = BaseParser.parse_error  # untyped upstream
    error: Exception = parse(str(reply))
    return error


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: PipelinedConnection) -> None:
        self.owner = owner
        # Replies are text (job fields, ids, JSON): decode them here, in C.
        self.reader = hiredis.Reader(replyError=rexc.ResponseError, encoding="utf-8",
                                     errors="replace")
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiters = self.owner._waiters
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if not waiters:  # pragma: no cover - the server sent more than asked
                continue
            future, _ = waiters.popleft()
            if not future.done():
                if isinstance(reply, rexc.ResponseError):
                    future.set_result(_error(reply))
                else:
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(self, exc)


class PipelinedConnection:
    """A single auto-pipelining connection (see the module docstring)."""

    def __init__(self, options: Options, timeout: float = 10.0) -> None:
        self.options = options
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._waiters: collections.deque[tuple[asyncio.Future[Any], float]] = \
            collections.deque()
        self._buffer: list[bytes] = []
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        opts = self.options
        if opts.path is not None:
            connect = loop.create_unix_connection(lambda: _Protocol(self), opts.path)
        else:
            connect = loop.create_connection(lambda: _Protocol(self), opts.host, opts.port,
                                             ssl=opts.ssl_context,
                                             server_hostname=opts.host if opts.ssl_context
                                             else None)
        try:
            _, protocol = await asyncio.wait_for(connect, opts.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise rexc.ConnectionError(f"cannot connect to Redis: {exc}") from exc
        handshake: list[tuple[Any, ...]] = []
        if opts.password is not None:
            handshake.append(("AUTH", opts.username, opts.password) if opts.username
                             else ("AUTH", opts.password))
        if opts.db:
            handshake.append(("SELECT", opts.db))
        if opts.client_name:
            handshake.append(("CLIENT", "SETNAME", opts.client_name))
        if handshake:
            replies = await asyncio.gather(*self._send(protocol, handshake))
            for reply in replies:
                if isinstance(reply, Exception):
                    assert protocol.transport is not None
                    protocol.transport.close()
                    raise reply
        return protocol

    async def _ensure(self) -> _Protocol:
        if self._closed:
            raise rexc.ConnectionError("connection closed")
        if self._protocol is not None:
            return self._protocol
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
            try:
                protocol = await self._connecting
            finally:
                self._connecting = None
            self._protocol = protocol
            self._arm_watchdog()
            return protocol
        return await asyncio.shield(self._connecting)

    def _send(self, protocol: _Protocol, commands: Sequence[Any],
              immediate: bool = False) -> list[asyncio.Future[Any]]:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        idle = immediate or (not self._waiters and not self._flush_scheduled)
        futures = []
        for command in commands:
            future: asyncio.Future[Any] = loop.create_future()
            self._waiters.append((future, now))
            futures.append(future)
            self._buffer.append(encode_command(command))
        if idle and protocol.transport is not None and not protocol.transport.is_closing():
            # Nothing else in flight (a lone producer), or the caller asked for
            # it: send now rather than one loop turn later. Concurrent callers
            # otherwise share one write at the end of the turn (below).
            data = b"".join(self._buffer)
            self._buffer.clear()
            protocol.transport.write(data)
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush, protocol)
        return futures

    def _flush(self, protocol: _Protocol) -> None:
        self._flush_scheduled = False
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        if protocol.transport is None or protocol.transport.is_closing():
            self._fail(rexc.ConnectionError("connection lost"))
            return
        protocol.transport.write(data)

    def send_one(self, command: Any, immediate: bool = False) -> asyncio.Future[Any] | None:
        """Send one command and return a future of its reply (an error reply
        is its result, as an exception object); ``None`` when not connected
        (then use :meth:`execute_batch`, which connects).

        ``immediate`` writes it before returning (after anything still
        buffered), for a caller with more work to do in this loop iteration
        (the worker finishing jobs in chunks): Redis starts on the command
        while Python goes on, instead of when the iteration ends.
        """
        protocol = self._protocol
        if protocol is None or self._closed or protocol.transport is None \
                or protocol.transport.is_closing():
            return None
        return self._send(protocol, (command,), immediate)[0]

    async def execute_batch(self, commands: Sequence[Any]) -> list[Any]:
        """Send ``commands`` and return their replies in order.

        Error replies are returned as exception objects (redis-py's classes),
        not raised; a connection failure raises ``ConnectionError``.
        """
        protocol = await self._ensure()
        futures = self._send(protocol, commands)
        if len(futures) == 1:
            return [await futures[0]]
        replies: list[Any] = await asyncio.gather(*futures)
        return replies

    def _fail(self, exc: Exception) -> None:
        waiters, self._waiters = self._waiters, collections.deque()
        self._buffer.clear()
        for future, _ in waiters:
            if not future.done():
                future.set_exception(exc)

    def _lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if self._protocol is protocol:
            self._protocol = None
        self._fail(rexc.ConnectionError(f"connection lost: {exc}" if exc
                                        else "connection closed by the server"))

    def _arm_watchdog(self) -> None:
        if self._watchdog is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_later(min(self.timeout / 2, 1.0), self._check)

    def _check(self) -> None:
        self._watchdog = None
        if self._waiters and time.monotonic() - self._waiters[0][1] > self.timeout:
            protocol = self._protocol
            if protocol is not None and protocol.transport is not None:
                protocol.transport.abort()  # connection_lost fails the waiters
            else:
                self._fail(rexc.TimeoutError("Redis did not answer in time"))
        if self._protocol is not None:
            self._arm_watchdog()

    async def reset(self) -> None:
        """Drop the current connection (pending commands fail); the next command
        connects again."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()
        self._fail(rexc.ConnectionError("connection reset"))

    def __del__(self) -> None:
        # An AsyncQueue dropped without close(): close the socket, quietly.
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            transport = protocol.transport
            with contextlib.suppress(Exception):
                transport.abort()
            # Its loop may be closed already, when abort() cannot run: close the
            # raw socket (asyncio's private attribute; best effort at GC time).
            raw = getattr(transport, "_sock", None)
            if raw is not None:
                with contextlib.suppress(Exception):
                    raw.close()
                    transport._sock = None  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        """Close the connection; pending commands fail."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
        self._fail(rexc.ConnectionError("connection closed"))


class SyncConnection:
    """The synchronous twin of :class:`PipelinedConnection`, for producers.

    A small pool of sockets: a call takes an idle one (or opens one), sends
    its batch in one ``sendall``, reads the replies back in order and returns
    the socket to the pool, so a ``Queue`` can be shared by the threads of a
    web app. A forked child never reuses its parent's sockets. A socket that
    failed is closed, not returned; the next call opens a new one.
    """

    def __init__(self, options: Options, timeout: float = 10.0, max_idle: int = 8) -> None:
        self.options = options
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[tuple[socket.socket, Any]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _open(self) -> tuple[socket.socket, Any]:
        opts = self.options
        try:
            if opts.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(opts.connect_timeout)
                sock.connect(opts.path)
            else:
                sock = socket.create_connection((opts.host, opts.port), opts.connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if opts.ssl_context is not None:
                    sock = opts.ssl_context.wrap_socket(sock, server_hostname=opts.host)
            sock.settimeout(self.timeout)
        except OSError as exc:
            raise rexc.ConnectionError(f"cannot connect to Redis: {exc}") from exc
        conn = (sock, hiredis.Reader(replyError=rexc.ResponseError, encoding="utf-8",
                                     errors="replace"))
        handshake: list[tuple[Any, ...]] = []
        if opts.password is not None:
            handshake.append(("AUTH", opts.username, opts.password) if opts.username
                             else ("AUTH", opts.password))
        if opts.db:
            handshake.append(("SELECT", opts.db))
        if opts.client_name:
            handshake.append(("CLIENT", "SETNAME", opts.client_name))
        if handshake:
            for reply in self._exchange(conn, handshake):
                if isinstance(reply, Exception):
                    _close(conn)
                    raise reply
        return conn

    def _exchange(self, conn: tuple[socket.socket, Any],
                  commands: Sequence[Any]) -> list[Any]:
        sock, reader = conn
        sock.sendall(b"".join(encode_command(c) for c in commands))
        replies: list[Any] = []
        while len(replies) < len(commands):
            reply = reader.gets()
            if reply is False:
                data = sock.recv(65536)
                if not data:
                    raise rexc.ConnectionError("connection closed by the server")
                reader.feed(data)
                continue
            replies.append(_error(reply) if isinstance(reply, rexc.ResponseError) else reply)
        return replies

    def execute_batch(self, commands: Sequence[Any]) -> list[Any]:
        """Send ``commands``; return their replies in order (error replies as
        exception objects, not raised). Connection failures raise."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours
                self._idle, self._pid = [], os.getpid()
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            try:
                replies = self._exchange(conn, commands)
            except (rexc.ConnectionError, ConnectionResetError, BrokenPipeError):
                # An idle socket the server closed meanwhile (CLIENT KILL, a
                # restart, an idle timeout): it closed before reading the
                # commands, so sending them again on a new socket is safe.
                _close(conn)
            except BaseException as exc:
                _close(conn)
                _reraise(exc)
            else:
                self._checkin(conn)
                return replies
        conn = self._open()
        try:
            replies = self._exchange(conn, commands)
        except BaseException as exc:
            _close(conn)
            _reraise(exc)
        self._checkin(conn)
        return replies

    def __del__(self) -> None:  # an unclosed Queue must not leak sockets
        with contextlib.suppress(Exception):
            self.close()

    def _checkin(self, conn: tuple[socket.socket, Any]) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        _close(conn)

    def close(self) -> None:
        """Close the idle sockets."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _reraise(exc: BaseException) -> NoReturn:
    """Raise socket errors as redis-py's, anything else as it is."""
    if isinstance(exc, TimeoutError):
        raise rexc.TimeoutError("Redis did not answer in time") from exc
    if isinstance(exc, OSError):
        raise rexc.ConnectionError(f"connection lost: {exc}") from exc
    raise exc


def _close(conn: tuple[socket.socket, Any]) -> None:
    with contextlib.suppress(OSError):
        conn[0].close()
