"""The synchronous RESP connection for producers: :class:`SyncConnection`, a
small thread-safe pool of sockets, one ``sendall`` and in-order replies per
batch.

A batch is never sent twice: a reply lost after the send raises
``RedisConnectionError`` saying it may have been applied. An idle socket is
checked (one ``poll``) before reuse, so a socket the server closed meanwhile
(CLIENT KILL, a restart, an idle timeout) is replaced before anything is
written to it.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import threading
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.exceptions as rexc

from ._resp_encode import encode_batch
from ._resp_errors import (
    MAY_HAVE_BEEN_APPLIED,
    handshake_error,
    handshake_timeout,
    not_redis,
    parse_error,
    refused,
)
from ._resp_options import Options, handshake_commands
from .errors import RedisConnectionError

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
        handshake = handshake_commands(opts)
        if handshake:
            try:  # the socket's timeout is still the connect timeout
                replies = self._exchange(conn, encode_batch(handshake), len(handshake),
                                         handshake=True)
            except BaseException:
                _close(conn)
                raise
            for reply in replies:
                if isinstance(reply, Exception):
                    _close(conn)
                    raise handshake_error(opts, reply)
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
                    reply = parse_error(reply)
                    if isinstance(reply, rexc.MaxClientsReachedError):
                        raise refused(self.options, reply)
                replies.append(reply)
        except RedisConnectionError:
            raise
        except hiredis.ProtocolError as exc:
            raise not_redis(self.options, exc) from exc
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
                return handshake_timeout(opts)
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
        data = encode_batch(commands)  # a bad argument raises before any I/O
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
