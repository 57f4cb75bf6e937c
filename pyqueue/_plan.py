"""Operations described once, run by a sync or an async Redis client.

An operation is a generator (a *plan*) that yields batches of commands and
receives their replies; each batch costs one round trip (a non-transactional
pipeline when it holds more than one command). One runner drives every plan:

- a *transport* submits a batch and gives back its replies, error replies as
  values (never raised): :class:`SyncTransport` and :class:`AsyncTransport`,
  with adapters for redis-py (sync and asyncio) and pyqueue's own
  ``SyncConnection`` and ``PipelinedConnection`` (:func:`sync_transport`,
  :func:`async_transport`);
- one pure function, :func:`settle`, looks at a batch and its replies and
  decides: send some commands again with EVAL (``NOSCRIPT``: the script cache
  was flushed or Redis restarted; EVAL also reloads it, so callers never see
  it), or fail with pyqueue's error (:func:`translate`), or hand the replies
  on to the plan;
- :func:`run_sync` loops; :func:`start_async` advances the plan from the
  replies' done-callbacks (no task per call) and returns a future of the
  result; :func:`run_async` awaits the replies in the caller's coroutine.

An error is thrown into the plan at its ``yield`` (a plan may catch it to say
what it knows, as ``add_bulk`` does) and propagates from the runner when the
plan does not. A command built with ``errors_as_values=True`` gets its error
reply handed on as a pyqueue exception object instead.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis
import redis.asyncio
import redis.exceptions as rexc

from ._resp import PipelinedConnection, SyncConnection
from .errors import (
    RedisBusyError,
    RedisConnectionError,
    RedisDataError,
    RedisError,
    RedisReplyError,
    RedisStateError,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Script:
    """A Lua script's name, assembled source and SHA1."""

    name: str
    source: str
    sha: str


@dataclass(slots=True)
class Command:
    """One Redis command or script call.

    ``args`` are the command's words; for a script call ``script`` is set and
    ``args`` are ``[numkeys, *keys, *argv]``.
    """

    args: tuple[Any, ...]
    script: Script | None = None
    #: RESP of the words that never change for this script and queue
    #: (EVALSHA, sha, numkeys, keys, base) and how many words that is;
    #: ``tail`` holds the rest. Used by the pipelined connection.
    head: bytes | None = None
    head_count: int = 0
    tail: tuple[Any, ...] = ()
    #: Hand an error reply on to the plan (as pyqueue's exception object)
    #: instead of failing the plan: for a plan that knows what to do with it.
    errors_as_values: bool = False

    def evalsha(self) -> tuple[Any, ...]:
        assert self.script is not None
        return ("EVALSHA", self.script.sha, *self.args)

    def eval_words(self) -> tuple[Any, ...]:
        assert self.script is not None
        return ("EVAL", self.script.source, *self.args)

    def words(self) -> tuple[Any, ...]:
        return self.evalsha() if self.script is not None else self.args


Batch = Sequence[Command]
Plan = Generator[Batch, list[Any], T]


def cmd(*args: Any) -> Command:
    """A plain Redis command."""
    return Command(args)


def single(command: Command) -> Plan[Any]:
    """A plan of one command that returns its reply."""
    replies = yield [command]
    return replies[0]


# --- errors -------------------------------------------------------------------

#: Error codes of a server that is up but cannot serve now.
_TRANSIENT = frozenset({"BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"})
#: Error codes of a server that refuses writes (memory, role, permission, disk).
_REFUSED = frozenset({"OOM", "READONLY", "NOPERM", "MISCONF", "UNBLOCKED"})
#: redis-py strips the code from these classes' messages: put it back.
_CLASS_CODES: tuple[tuple[type[Exception], str], ...] = (
    (rexc.NoScriptError, "NOSCRIPT"),
    (rexc.ReadOnlyError, "READONLY"),
    (rexc.OutOfMemoryError, "OOM"),
    (rexc.NoPermissionError, "NOPERM"),
    (rexc.BusyLoadingError, "LOADING"),
    (rexc.MasterDownError, "MASTERDOWN"),
    (rexc.TryAgainError, "TRYAGAIN"),
    (rexc.ClusterDownError, "CLUSTERDOWN"),
)
#: An error raised inside a script, as Redis < 7 reports it.
_SCRIPT_ERROR = re.compile(r"@user_script:\d+: ([A-Z]+) ")


def error_code(exc: BaseException) -> str | None:
    """Redis's error code of an error reply (``"WRONGTYPE"``, ``"BUSY"``, ...),
    or ``None`` for anything that is not an error reply."""
    for cls, code in _CLASS_CODES:
        if isinstance(exc, cls):
            return code
    if not isinstance(exc, rexc.ResponseError):
        return None
    text = str(exc)
    inner = _SCRIPT_ERROR.search(text)
    if inner is not None:  # an error inside a script (Redis < 7 wraps it in ERR)
        return inner.group(1)
    code = text.split(" ", 1)[0]
    if code.isupper():
        return code
    # redis-py cuts "ERR " off the messages it parses; other codes it keeps.
    return "ERR" if type(exc) is rexc.ResponseError else None


def translate(exc: BaseException) -> RedisError:
    """pyqueue's exception for a failure talking to Redis (the one place that
    maps them). Always a new exception, whose ``__cause__`` is ``exc``:

    - connection problems, and ``BUSY``, ``LOADING``, ``MASTERDOWN``,
      ``TRYAGAIN``, ``CLUSTERDOWN`` (transient) -> ``RedisConnectionError``
      (``RedisBusyError`` for the codes);
    - ``OOM``, ``READONLY``, ``NOPERM``, ``MISCONF``, ``UNBLOCKED`` ->
      ``RedisStateError``;
    - ``WRONGTYPE`` -> ``RedisDataError``;
    - any other error reply -> ``RedisReplyError`` with Redis's message.
    """
    error = _translated(exc)
    error.__cause__ = exc
    return error


def _translated(exc: BaseException) -> RedisError:
    code = error_code(exc)
    text = str(exc)
    if code is not None and not text.startswith(code):
        text = f"{code} {text}"
    if code in _TRANSIENT:
        return RedisBusyError(f"Redis cannot serve now (try again later): {text}", code)
    if code in _REFUSED:
        return RedisStateError(f"Redis refused the command: {text}", code)
    if code == "WRONGTYPE":
        return RedisDataError(
            "a key of the queue holds a value of the wrong type (written by something "
            f"other than pyqueue or BullMQ?); the operation was refused: {text}", code)
    if isinstance(exc, rexc.ResponseError):
        return RedisReplyError(f"Redis answered with an error: {text}", code)
    if isinstance(exc, rexc.ConnectionError | rexc.TimeoutError | OSError
                  | asyncio.TimeoutError):
        return RedisConnectionError(f"Redis connection failed: {text}")
    return RedisError(f"Redis command failed ({type(exc).__name__}): {text}")


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during (``__cause__``,
    ``__context__``), each once: a chain may loop back on itself (an error
    reply object re-raised ``from`` itself), so every walk goes through here."""
    seen: set[int] = set()
    out: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        todo.extend(e for e in (current.__context__, current.__cause__) if e is not None)
    return out


def needs_reconnect(exc: BaseException) -> bool:
    """True when the server we talk to stopped being a writable primary (a
    failover demoted it: READONLY, or UNBLOCKED from a blocking call): the
    connection must be dropped so that a new one reaches the new primary."""
    for current in exception_chain(exc):
        code = current.code if isinstance(current, RedisError) else error_code(current)
        if code in ("READONLY", "UNBLOCKED"):
            return True
    return False


# --- the decision -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Redo:
    """Send these commands of the batch again, with EVAL (their script was not
    loaded); then settle the batch again with the new replies in place."""

    indices: tuple[int, ...]

    def commands(self, batch: Batch) -> list[Command]:
        """The EVAL commands to send."""
        return [Command(batch[i].eval_words()) for i in self.indices]


@dataclass(frozen=True, slots=True)
class Fail:
    """Throw ``error`` into the plan (pyqueue's exception for the first error
    reply of a command that does not take errors as values)."""

    error: RedisError


def settle(batch: Batch, replies: list[Any], *, redone: bool = False) -> list[Any] | Redo | Fail:
    """Decide what a batch's replies mean (pure: no I/O).

    ``replies`` hold error replies as exception values (redis-py's classes;
    a connection error in a slot whose reply never came). Returns the replies
    to hand to the plan (the same list when all is well), a :class:`Redo` for
    ``NOSCRIPT`` replies (only when not ``redone`` already), or a
    :class:`Fail`.
    """
    redo: list[int] | None = None
    fail: Fail | None = None
    handed = replies
    for i, reply in enumerate(replies):
        if not isinstance(reply, BaseException):
            continue
        if not redone and isinstance(reply, rexc.NoScriptError) \
                and batch[i].script is not None:
            if redo is None:
                redo = []
            redo.append(i)
        elif batch[i].errors_as_values:
            if handed is replies:
                handed = list(replies)
            handed[i] = translate(reply)
        elif fail is None:
            fail = Fail(translate(reply))
    if redo is not None:
        return Redo(tuple(redo))
    return fail if fail is not None else handed


def _merge(replies: list[Any], redo: Redo, again: Sequence[Any]) -> list[Any]:
    merged = list(replies)
    for i, reply in zip(redo.indices, again, strict=True):
        merged[i] = reply
    return merged


# --- transports -----------------------------------------------------------------

class SyncTransport(Protocol):
    """Sends a batch and returns its replies in order, error replies as values;
    raises (redis-py's ``ConnectionError``/``TimeoutError``) only when nothing
    is known about the replies. ``SyncConnection`` is one as it is."""

    def execute_batch(self, commands: Sequence[Command]) -> list[Any]: ...


class AsyncTransport(Protocol):
    """Submits a batch and returns a future of its replies.

    For a batch of one command the result is that command's reply itself (no
    list: the common case costs one future); for more, the list of replies.
    Error replies are values; so is a connection error in a slot whose reply
    never came when others did. The future fails only when nothing is known.
    ``immediate`` writes the batch before returning (see
    ``PipelinedConnection.send_one``).
    """

    def submit(self, batch: Batch, immediate: bool = False) -> asyncio.Future[Any]: ...


class RedisSyncTransport:
    """A ``redis.Redis`` client as a :class:`SyncTransport`."""

    __slots__ = ("client",)

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def execute_batch(self, commands: Sequence[Command]) -> list[Any]:
        if len(commands) == 1:
            execute: Any = self.client.execute_command  # untyped upstream
            try:
                return [execute(*commands[0].words())]
            except rexc.ResponseError as exc:
                return [exc]
        pipe: Any = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command.words())
        replies: list[Any] = pipe.execute(raise_on_error=False)
        return replies


class RedisAsyncTransport:
    """A ``redis.asyncio.Redis`` client as an :class:`AsyncTransport` (a task
    per batch: redis-py's client has no futures to hand out)."""

    __slots__ = ("client",)

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client

    def submit(self, batch: Batch, immediate: bool = False) -> asyncio.Future[Any]:
        return asyncio.ensure_future(self._execute(batch))

    async def _execute(self, batch: Batch) -> Any:
        if len(batch) == 1:
            execute: Any = self.client.execute_command  # untyped upstream
            try:
                return await execute(*batch[0].words())
            except rexc.ResponseError as exc:
                return exc
        pipe: Any = self.client.pipeline(transaction=False)
        for command in batch:
            pipe.execute_command(*command.words())
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


class PipelinedTransport:
    """pyqueue's ``PipelinedConnection`` as an :class:`AsyncTransport`: each
    command's future comes from the connection (written now, or with the
    other commands of this loop iteration); only connecting takes a task."""

    __slots__ = ("connection",)

    def __init__(self, connection: PipelinedConnection) -> None:
        self.connection = connection

    def submit(self, batch: Batch, immediate: bool = False) -> asyncio.Future[Any]:
        connection = self.connection
        last = len(batch) - 1
        if last == 0:
            sent = connection.send_one(batch[0], immediate)
            if sent is not None:
                return sent
            return asyncio.ensure_future(self._connect_and_send(batch))
        first = connection.send_one(batch[0])
        if first is None:  # not connected: execute_batch connects first
            return asyncio.ensure_future(self._connect_and_send(batch))
        futures = [first]
        for i in range(1, last + 1):
            sent = connection.send_one(batch[i], immediate and i == last)
            futures.append(sent if sent is not None else _failed_slot())
        return _Gather(futures).result

    async def _connect_and_send(self, batch: Batch) -> Any:
        replies = await self.connection.execute_batch(batch)
        return replies[0] if len(batch) == 1 else replies


def _failed_slot() -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(rexc.ConnectionError("connection lost while sending"))
    return future


class _Gather:
    """One future of many commands' replies, each failure kept as a value."""

    __slots__ = ("futures", "left", "result")

    def __init__(self, futures: list[asyncio.Future[Any]]) -> None:
        self.futures = futures
        self.left = len(futures)
        self.result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        for future in futures:
            future.add_done_callback(self._one_done)

    def _one_done(self, _: asyncio.Future[Any]) -> None:
        self.left -= 1
        if self.left or self.result.done():
            return
        self.result.set_result([_value(future) for future in self.futures])


def _value(future: asyncio.Future[Any]) -> Any:
    if future.cancelled():
        return rexc.ConnectionError("the command was cancelled")
    return future.exception() or future.result()


def sync_transport(client: redis.Redis | SyncConnection | SyncTransport) -> SyncTransport:
    """The transport for a sync client (``SyncConnection`` is one already)."""
    if isinstance(client, redis.Redis):
        return RedisSyncTransport(client)
    return client


def async_transport(client: redis.asyncio.Redis | PipelinedConnection
                    | AsyncTransport) -> AsyncTransport:
    """The transport for an asyncio client (a transport is returned as it is)."""
    if isinstance(client, PipelinedTransport | RedisAsyncTransport):  # the common case
        return client
    if isinstance(client, PipelinedConnection):
        return PipelinedTransport(client)
    if isinstance(client, redis.asyncio.Redis):
        return RedisAsyncTransport(client)
    return client


# --- runners --------------------------------------------------------------------

def run_sync(client: redis.Redis | SyncConnection | SyncTransport, plan: Plan[T]) -> T:
    """Drive ``plan`` with a synchronous client; returns its result."""
    transport = sync_transport(client)
    try:
        batch = next(plan)
        while True:
            try:
                got = transport.execute_batch(batch)
            except rexc.RedisError as exc:
                batch = plan.throw(translate(exc))
                continue
            outcome = settle(batch, got)
            if type(outcome) is Redo:
                try:
                    again = transport.execute_batch(outcome.commands(batch))
                except rexc.RedisError as exc:
                    batch = plan.throw(translate(exc))
                    continue
                outcome = settle(batch, _merge(got, outcome, again), redone=True)
            if type(outcome) is Fail:
                batch = plan.throw(outcome.error)
            else:
                assert isinstance(outcome, list)
                batch = plan.send(outcome)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def run_async(client: redis.asyncio.Redis | PipelinedConnection | AsyncTransport,
                    plan: Plan[T]) -> T:
    """Drive ``plan`` with an asyncio client; returns its result.

    Awaits each batch's replies in the caller's coroutine: no task, no future
    beyond the connection's own (see :func:`start_async` for callers that want
    a future and no coroutine at all).
    """
    transport = client if isinstance(client, PipelinedTransport) else async_transport(client)
    submit = transport.submit
    try:
        batch = next(plan)
        while True:
            try:
                got = await submit(batch)
                if len(batch) == 1:
                    if not isinstance(got, BaseException):  # all is well: settle() says so
                        batch = plan.send([got])
                        continue
                    got = [got]
                outcome = settle(batch, got)
                if type(outcome) is Redo:
                    again = await submit(outcome.commands(batch))
                    if len(outcome.indices) == 1:
                        again = [again]
                    outcome = settle(batch, _merge(got, outcome, again), redone=True)
            except rexc.RedisError as exc:
                batch = plan.throw(translate(exc))
                continue
            if type(outcome) is Fail:
                batch = plan.throw(outcome.error)
            else:
                assert isinstance(outcome, list)
                batch = plan.send(outcome)
    except StopIteration as stop:
        result: T = stop.value
        return result


def start_async(client: redis.asyncio.Redis | PipelinedConnection | AsyncTransport,
                plan: Plan[T], *, immediate: bool = False) -> asyncio.Future[T]:
    """Start ``plan`` now and return a future of its result.

    The first batch is submitted before this returns (written at once with
    ``immediate``, when the connection is up); the plan is advanced from the
    replies' done-callbacks, so no task or coroutine is made for it.
    Cancelling the returned future abandons the plan (replies in flight are
    dropped). Must be called with a running event loop.
    """
    driver = _Driver(async_transport(client), plan, immediate)
    driver.advance(None, None)
    return driver.result


class _Driver:
    """The state of one plan run by :func:`start_async`."""

    __slots__ = ("batch", "got", "immediate", "plan", "redo", "result", "transport")

    def __init__(self, transport: AsyncTransport, plan: Plan[Any], immediate: bool) -> None:
        self.transport = transport
        self.plan = plan
        self.immediate = immediate
        self.result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.batch: Batch = ()
        self.got: list[Any] = []
        self.redo: Redo | None = None

    def advance(self, replies: list[Any] | None, error: BaseException | None) -> None:
        """Give the plan its replies (or throw ``error`` into it) and submit the
        batch it yields next, or settle the result."""
        result = self.result
        try:
            if error is not None:
                batch = self.plan.throw(error)
            elif replies is None:
                batch = next(self.plan)
            else:
                batch = self.plan.send(replies)
        except StopIteration as stop:
            if not result.done():
                result.set_result(stop.value)
            return
        except asyncio.CancelledError:
            result.cancel()
            return
        except BaseException as exc:
            if not result.done():
                result.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.batch = batch
        self.redo = None
        self.transport.submit(batch, self.immediate).add_done_callback(self._replied)

    def _replied(self, future: asyncio.Future[Any]) -> None:
        if self.result.done():  # cancelled by the caller: abandon the plan
            self.plan.close()
            return
        batch = self.batch
        try:
            got = future.result()
        except rexc.RedisError as exc:
            self.advance(None, translate(exc))
            return
        except BaseException as exc:
            self.advance(None, exc)
            return
        redo = self.redo
        if redo is None:
            if len(batch) == 1:
                got = [got]
            outcome = settle(batch, got)
        else:  # the EVAL replies of a redo
            if len(redo.indices) == 1:
                got = [got]
            outcome = settle(batch, _merge(self.got, redo, got), redone=True)
        if type(outcome) is Redo:
            self.got, self.redo = got, outcome
            self.transport.submit(outcome.commands(batch), True) \
                .add_done_callback(self._replied)
        elif type(outcome) is Fail:
            self.advance(None, outcome.error)
        else:
            assert isinstance(outcome, list)
            self.advance(outcome, None)
