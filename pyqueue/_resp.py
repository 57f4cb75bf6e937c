"""An auto-pipelining Redis connection for the worker's hot path.

redis-py's asyncio client checks a connection out of its pool and waits for
each reply before the next command may use that connection; with a hundred
job slots finishing at once, most of a worker's CPU goes there. This
connection is shared by all the worker's slots: commands issued in the same
event-loop iteration are written in one ``send``, replies are parsed by
``hiredis`` and handed back in order. One worker, one socket, no locks.

It speaks RESP2 and does only what the hot path needs: the handshake (AUTH,
SELECT, CLIENT SETNAME), TCP, unix sockets and TLS taken from the settings
of the redis-py client it stands in for. Error replies of commands are the
same exception objects redis-py raises, so the rest of pyqueue cannot tell
the difference.

Connection failures raise pyqueue's :class:`~pyqueue.errors.RedisConnectionError`
naming the server's address (never the credentials): a failed connect, a
handshake unanswered within the connect timeout, a refused AUTH, Redis
turning the client away (``max number of clients reached``), a peer that
does not speak RESP. A command unanswered for ``timeout`` seconds closes the
connection (a hung or blackholed peer) and fails every pending command; the
next command reconnects.

Neither connection ever sends a command twice. Once a batch has been
written, a lost reply raises ``RedisConnectionError`` saying the commands
may have been applied (a retry is safe only with job ids). The sync pool
checks an idle socket before reusing it (one ``poll``), so a socket the
server closed meanwhile (CLIENT KILL, a restart, an idle timeout) is
replaced before anything is written to it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
import redis
import redis.asyncio
import redis.exceptions as rexc
from redis._parsers import BaseParser

from ._resp_encode import encode, encode_args
from .errors import RedisConnectionError

#: Added to an error raised after a batch was written: Redis may have run it.
MAY_HAVE_BEEN_APPLIED = "; the commands may have been applied"

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
    #: Never shown: not in the repr, not in any error message.
    password: str | None = field(default=None, repr=False)
    client_name: str | None = None
    ssl_context: ssl.SSLContext | None = None
    #: Bounds the TCP (and TLS) connect, and separately the handshake
    #: (AUTH, SELECT, CLIENT SETNAME) that follows it.
    connect_timeout: float = 5.0

    @property
    def address(self) -> str:
        """The server's address for messages: ``host:port`` or ``unix:path``
        (never the credentials)."""
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


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


def _handshake(opts: Options) -> list[tuple[Any, ...]]:
    """The commands that open a connection: AUTH, SELECT, CLIENT SETNAME."""
    commands: list[tuple[Any, ...]] = []
    if opts.password is not None:
        commands.append(("AUTH", opts.username, opts.password) if opts.username
                        else ("AUTH", opts.password))
    if opts.db:
        commands.append(("SELECT", opts.db))
    if opts.client_name:
        commands.append(("CLIENT", "SETNAME", opts.client_name))
    return commands


def _handshake_error(opts: Options, reply: BaseException) -> RedisConnectionError:
    """A failed handshake as pyqueue's error (the cause kept, never the password)."""
    if isinstance(reply, RedisConnectionError):
        return reply
    if isinstance(reply, rexc.AuthenticationError):
        error = RedisConnectionError(
            f"Redis at {opts.address} refused the credentials: {reply}")
    else:
        error = RedisConnectionError(
            f"the connection handshake with Redis at {opts.address} failed: {reply}")
    error.__cause__ = reply
    return error


def _refused(opts: Options, reply: Exception) -> RedisConnectionError:
    """Redis turned the client away (it closes the connection after this reply)."""
    error = RedisConnectionError(f"Redis at {opts.address} refused the connection: {reply}")
    error.__cause__ = reply
    return error


def _not_redis(opts: Options, exc: Exception) -> RedisConnectionError:
    error = RedisConnectionError(
        f"the server at {opts.address} did not speak the Redis protocol ({exc}); "
        "is it a Redis server?")
    error.__cause__ = exc
    return error


def _handshake_timeout(opts: Options) -> RedisConnectionError:
    return RedisConnectionError(
        f"Redis at {opts.address} did not answer the connection handshake "
        f"(AUTH/SELECT/CLIENT SETNAME) within {opts.connect_timeout:g} s")


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: PipelinedConnection) -> None:
        self.owner = owner
        # Replies are text (job fields, ids, JSON): decode them here, in C.
        self.reader = hiredis.Reader(replyError=rexc.ResponseError, encoding="utf-8",
                                     errors="replace")
        self.transport: asyncio.Transport | None = None
        #: Why the connection ended, when it said so (Redis's refusal, a peer
        #: that is not Redis): the error for commands sent to it afterwards.
        self.failure: RedisConnectionError | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiters = self.owner._waiters
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.failure = _not_redis(self.owner.options, exc)
                self.owner._abort(self, self.failure)
                return
            if reply is False:
                return
            if isinstance(reply, rexc.ResponseError):
                reply = _error(reply)
                if isinstance(reply, rexc.MaxClientsReachedError):
                    # Sent on accept, maybe before any command: the reason to give.
                    self.failure = _refused(self.owner.options, reply)
                    self.owner._abort(self, self.failure)
                    return
            if not waiters:  # pragma: no cover - the server sent more than asked
                continue
            future, _ = waiters.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(self, exc)


class PipelinedConnection:
    """A single auto-pipelining connection (see the module docstring)."""

    def __init__(self, options: Options, timeout: float = 10.0) -> None:
        self.options = options
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._handshaking: _Protocol | None = None
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
        except asyncio.TimeoutError as exc:
            raise RedisConnectionError(
                f"cannot connect to Redis at {opts.address}: "
                f"no answer within {opts.connect_timeout:g} s") from exc
        except OSError as exc:
            raise RedisConnectionError(
                f"cannot connect to Redis at {opts.address}: {exc}") from exc
        if protocol.failure is not None:  # refused at once (max clients)
            raise protocol.failure
        handshake = _handshake(opts)
        if not handshake:
            return protocol
        self._handshaking = protocol
        try:
            futures = self._send(protocol, handshake, immediate=True)
            replies = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True),
                                             opts.connect_timeout)
        except BaseException as exc:  # unanswered in time, or the caller gave up
            error = _handshake_timeout(opts) if isinstance(exc, asyncio.TimeoutError) \
                else RedisConnectionError(f"connecting to Redis at {opts.address} was "
                                          "interrupted")
            self._abort(protocol, error)
            if isinstance(exc, asyncio.TimeoutError):
                raise error from None
            raise
        finally:
            self._handshaking = None
        for reply in replies:
            if isinstance(reply, BaseException):
                if protocol.transport is not None:
                    protocol.transport.abort()
                raise _handshake_error(opts, reply)
        return protocol

    async def _install(self) -> _Protocol:
        """Connect and make it the connection (one task, however many callers wait)."""
        try:
            protocol = await self._connect()
        finally:
            self._connecting = None
        if self._closed:  # closed while connecting
            if protocol.transport is not None:
                protocol.transport.abort()
            raise RedisConnectionError("connection closed")
        self._protocol = protocol
        self._arm_watchdog()
        return protocol

    async def _ensure(self) -> _Protocol:
        if self._closed:
            raise RedisConnectionError("connection closed")
        protocol = self._protocol
        if protocol is not None:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._install())
        # Shielded: a caller that is cancelled does not cancel the others' connect.
        return await asyncio.shield(self._connecting)

    def _send(self, protocol: _Protocol, commands: Sequence[Any],
              immediate: bool = False) -> list[asyncio.Future[Any]]:
        # Encoded first: a bad argument raises before anything is queued.
        encoded = [encode_command(command) for command in commands]
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        idle = immediate or (not self._waiters and not self._flush_scheduled)
        futures = []
        waiters = self._waiters
        for _ in encoded:
            future: asyncio.Future[Any] = loop.create_future()
            waiters.append((future, now))
            futures.append(future)
        self._buffer.extend(encoded)
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
            self._fail(protocol.failure or RedisConnectionError(
                f"connection to Redis at {self.options.address} lost" + MAY_HAVE_BEEN_APPLIED))
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
        not raised; a connection failure raises pyqueue's
        ``RedisConnectionError``.
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

    def _owns(self, protocol: _Protocol) -> bool:
        """Whether ``protocol`` is the connection in use (or being opened);
        an older one's commands were failed when it was replaced."""
        if protocol is self._protocol:
            self._protocol = None
            return True
        return protocol is self._handshaking

    def _abort(self, protocol: _Protocol, exc: Exception) -> None:
        """Drop ``protocol`` and fail its pending commands with ``exc``."""
        owned = self._owns(protocol)
        if protocol.transport is not None:
            protocol.transport.abort()
        if owned:
            self._fail(exc)

    def _lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        handshake = protocol is self._handshaking
        if not self._owns(protocol):
            return
        detail = f" ({exc})" if exc else " (closed by the server)"
        self._fail(RedisConnectionError(
            f"connection to Redis at {self.options.address} lost during the handshake{detail}"
            if handshake else
            f"connection to Redis at {self.options.address} lost{detail}"
            + MAY_HAVE_BEEN_APPLIED))

    def _arm_watchdog(self) -> None:
        if self._watchdog is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_later(min(self.timeout / 2, 1.0), self._check)

    def _check(self) -> None:
        self._watchdog = None
        if self._waiters and time.monotonic() - self._waiters[0][1] > self.timeout:
            error = RedisConnectionError(
                f"Redis at {self.options.address} did not answer within {self.timeout:g} s"
                + MAY_HAVE_BEEN_APPLIED)
            protocol = self._protocol
            if protocol is not None:
                self._abort(protocol, error)
            else:
                self._fail(error)
        if self._protocol is not None:
            self._arm_watchdog()

    async def reset(self) -> None:
        """Drop the current connection (pending commands fail); the next command
        connects again."""
        protocol = self._protocol
        error = RedisConnectionError(
            f"connection to Redis at {self.options.address} reset" + MAY_HAVE_BEEN_APPLIED)
        if protocol is not None:
            self._abort(protocol, error)
        else:
            self._fail(error)

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
        self._fail(RedisConnectionError("connection closed"))


#: One pooled socket: the socket, its hiredis reader, and a poll object for
#: the check before reuse (``None`` where ``select.poll`` does not exist).
_Conn = tuple[socket.socket, Any, Any]


class SyncConnection:
    """The synchronous twin of :class:`PipelinedConnection`, for producers.

    A small pool of sockets: a call takes an idle one (or opens one), sends
    its batch in one ``sendall``, reads the replies back in order and returns
    the socket to the pool, so a ``Queue`` can be shared by the threads of a
    web app. A forked child never reuses its parent's sockets. An idle socket
    is checked (one ``poll``) before reuse: one the server closed meanwhile is
    dropped and a new one opened, before anything is written. A socket that
    failed is closed, not returned; a batch is never sent twice (a reply lost
    after the send raises ``RedisConnectionError``: it may have been applied).
    """

    def __init__(self, options: Options, timeout: float = 10.0, max_idle: int = 8) -> None:
        self.options = options
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _open(self) -> _Conn:
        opts = self.options
        sock: socket.socket | None = None
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
        except OSError as exc:
            if sock is not None:
                sock.close()
            reason = f"no answer within {opts.connect_timeout:g} s" \
                if isinstance(exc, TimeoutError) else str(exc)
            raise RedisConnectionError(
                f"cannot connect to Redis at {opts.address}: {reason}") from exc
        poller = None
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
        conn = (sock, hiredis.Reader(replyError=rexc.ResponseError, encoding="utf-8",
                                     errors="replace"), poller)
        handshake = _handshake(opts)
        if handshake:
            try:  # the socket's timeout is still the connect timeout
                replies = self._exchange(conn, _encode_batch(handshake), len(handshake),
                                         handshake=True)
            except BaseException:
                _close(conn)
                raise
            for reply in replies:
                if isinstance(reply, Exception):
                    _close(conn)
                    raise _handshake_error(opts, reply)
        sock.settimeout(self.timeout)
        return conn

    def _exchange(self, conn: _Conn, data: bytes, count: int,
                  handshake: bool = False) -> list[Any]:
        """Send ``data`` (``count`` commands); read their replies. Any failure
        raises ``RedisConnectionError`` (the socket is then unusable)."""
        sock, reader, _ = conn
        replies: list[Any] = []
        try:
            sock.sendall(data)
            while len(replies) < count:
                reply = reader.gets()
                if reply is False:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise self._closed_error(replies, handshake)
                    reader.feed(chunk)
                    continue
                if isinstance(reply, rexc.ResponseError):
                    reply = _error(reply)
                    if isinstance(reply, rexc.MaxClientsReachedError):
                        raise _refused(self.options, reply)
                replies.append(reply)
        except RedisConnectionError:
            raise
        except hiredis.ProtocolError as exc:
            raise _not_redis(self.options, exc) from exc
        except OSError as exc:
            raise self._failed(exc, handshake) from exc
        return replies

    def _closed_error(self, replies: list[Any], handshake: bool) -> RedisConnectionError:
        """The server closed the socket before answering everything: say why
        when it told us (an error reply about the connection)."""
        said = next((f": {r}" for r in replies if isinstance(r, rexc.ConnectionError)), "")
        where = " during the connection handshake" if handshake else ""
        return RedisConnectionError(
            f"Redis at {self.options.address} closed the connection{where}{said}"
            + ("" if handshake else MAY_HAVE_BEEN_APPLIED))

    def _failed(self, exc: OSError, handshake: bool) -> RedisConnectionError:
        opts = self.options
        if handshake:
            if isinstance(exc, TimeoutError):
                return _handshake_timeout(opts)
            return RedisConnectionError(
                f"connection to Redis at {opts.address} lost during the handshake: {exc}")
        if isinstance(exc, TimeoutError):
            return RedisConnectionError(
                f"Redis at {opts.address} did not answer within {self.timeout:g} s"
                + MAY_HAVE_BEEN_APPLIED)
        return RedisConnectionError(
            f"connection to Redis at {opts.address} lost ({exc})" + MAY_HAVE_BEEN_APPLIED)

    def execute_batch(self, commands: Sequence[Any]) -> list[Any]:
        """Send ``commands``; return their replies in order (error replies as
        exception objects, not raised). Connection failures raise pyqueue's
        ``RedisConnectionError``; a batch is never sent twice."""
        data = _encode_batch(commands)  # a bad argument raises before any I/O
        conn = self._checkout()
        if conn is None:
            conn = self._open()
        try:
            replies = self._exchange(conn, data, len(commands))
        except BaseException:
            _close(conn)
            raise
        self._checkin(conn)
        return replies

    def _checkout(self) -> _Conn | None:
        """An idle socket that is still open, or ``None``."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                conn = self._idle.pop()
                if not _stale(conn):
                    return conn
                _close(conn)
        return None

    def __del__(self) -> None:  # an unclosed Queue must not leak sockets
        with contextlib.suppress(Exception):
            self.close()

    def _checkin(self, conn: _Conn) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle and self._pid == os.getpid():
                self._idle.append(conn)
                return
        _close(conn)

    def close(self) -> None:
        """Close the idle sockets."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _encode_batch(commands: Sequence[Any]) -> bytes:
    return b"".join([encode_command(command) for command in commands])


def _stale(conn: _Conn) -> bool:
    """Whether an idle pooled socket can no longer be used. An idle socket has
    nothing to read: readable means the server closed it (EOF, reset) or sent
    something unasked. One ``poll`` syscall when it is fine."""
    sock, _, poller = conn
    try:
        if poller is not None:
            if not poller.poll(0):
                return False
        elif not select.select([sock], [], [], 0)[0]:
            return False
    except (OSError, ValueError):
        return True
    if isinstance(sock, ssl.SSLSocket):
        return _tls_stale(sock)
    return True


def _tls_stale(sock: ssl.SSLSocket) -> bool:
    """A readable TLS socket may hold only TLS records (a session ticket):
    read without blocking to tell those from application data or a close."""
    timeout = sock.gettimeout()
    try:
        sock.settimeout(0)
        sock.recv(1)  # data nobody asked for, or b"" (closed): unusable
    except ssl.SSLWantReadError:
        return False
    except OSError:
        return True
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)
    return True


def _close(conn: _Conn) -> None:
    with contextlib.suppress(OSError):
        conn[0].close()
