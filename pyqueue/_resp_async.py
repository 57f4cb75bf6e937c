"""The auto-pipelined asyncio connection of the worker's hot path:
:class:`PipelinedConnection`, one socket shared by every job slot, commands of
one event-loop iteration written together.

redis-py's asyncio client checks a connection out of its pool and waits for
each reply before the next command may use that connection; with a hundred
job slots finishing at once, most of a worker's CPU goes there. This
connection is shared by all the worker's slots: commands issued in the same
event-loop iteration are written in one ``send``, replies are parsed by
``hiredis`` and handed back in order. One worker, one socket, no locks.

A command unanswered for ``timeout`` seconds closes the connection (a hung or
blackholed peer) and fails every pending command; the next command
reconnects. A command is never sent twice: once written, a lost reply fails
with ``RedisConnectionError`` saying it may have been applied.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.exceptions as rexc

from ._resp_encode import encode_command
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
                self.failure = not_redis(self.owner.options, exc)
                self.owner._abort(self, self.failure)
                return
            if reply is False:
                return
            if isinstance(reply, rexc.ResponseError):
                reply = parse_error(reply)
                if isinstance(reply, rexc.MaxClientsReachedError):
                    # Sent on accept, maybe before any command: the reason to give.
                    self.failure = refused(self.owner.options, reply)
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
        handshake = handshake_commands(opts)
        if not handshake:
            return protocol
        self._handshaking = protocol
        try:
            futures = self._send(protocol, handshake, immediate=True)
            replies = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True),
                                             opts.connect_timeout)
        except BaseException as exc:  # unanswered in time, or the caller gave up
            error = handshake_timeout(opts) if isinstance(exc, asyncio.TimeoutError) \
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
                raise handshake_error(opts, reply)
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

    def send_batch(self, commands: Sequence[Any],
                   immediate: bool = False) -> list[asyncio.Future[Any]] | None:
        """Send ``commands`` together and return a future of each one's reply,
        in order; ``None`` when not connected (as :meth:`send_one`).

        The batch goes out in ONE write: now when the connection is idle or
        with ``immediate``, else with the other commands of this loop
        iteration. A bad argument raises before any of it is queued.
        """
        protocol = self._protocol
        if protocol is None or self._closed or protocol.transport is None \
                or protocol.transport.is_closing():
            return None
        return self._send(protocol, commands, immediate)

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
