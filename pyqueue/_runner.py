"""Runs plans (see :mod:`._plan`): the transports that submit a batch to a
sync or asyncio client, and the drivers :func:`run_sync`, :func:`run_async`
and :func:`start_async`.

- a *transport* submits a batch and gives back its replies, error replies as
  values (never raised): :class:`SyncTransport` and :class:`AsyncTransport`,
  with adapters for redis-py (sync and asyncio) and pyqueue's own
  ``SyncConnection`` and ``PipelinedConnection`` (:func:`sync_transport`,
  :func:`async_transport`);
- :func:`run_sync` loops; :func:`start_async` advances the plan from the
  replies' done-callbacks (no task per call) and returns a future of the
  result; :func:`run_async` awaits the replies in the caller's coroutine.

Each driver hands every batch's replies to :func:`._plan.settle` and does
what it decides (send again with EVAL, throw pyqueue's error into the plan,
or send the replies to it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import redis.exceptions as rexc

from ._cluster import ClusterAsyncTransport, ClusterSyncTransport
from ._plan import Batch, Command, Fail, Plan, Redo, merge_redo, settle, translate
from ._resp import PipelinedConnection, SyncConnection
from .errors import RedisError

T = TypeVar("T")


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
    """pyqueue's ``PipelinedConnection`` as an :class:`AsyncTransport`: the
    futures come from the connection, a batch written in one write (now, or
    with the other commands of this loop iteration); only connecting takes a
    task."""

    __slots__ = ("connection",)

    def __init__(self, connection: PipelinedConnection) -> None:
        self.connection = connection

    def submit(self, batch: Batch, immediate: bool = False) -> asyncio.Future[Any]:
        connection = self.connection
        if len(batch) == 1:
            sent = connection.send_one(batch[0], immediate)
            if sent is not None:
                return sent
        else:
            futures = connection.send_batch(batch, immediate)  # one write
            if futures is not None:
                return _Gather(futures).result
        # Not connected: execute_batch connects first.
        return asyncio.ensure_future(self._connect_and_send(batch))

    async def _connect_and_send(self, batch: Batch) -> Any:
        replies = await self.connection.execute_batch(batch)
        return replies[0] if len(batch) == 1 else replies


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


def sync_transport(client: redis.Redis | redis.cluster.RedisCluster | SyncConnection
                   | SyncTransport) -> SyncTransport:
    """The transport for a sync client (``SyncConnection`` is one already)."""
    if isinstance(client, redis.Redis):
        return RedisSyncTransport(client)
    if isinstance(client, redis.cluster.RedisCluster):
        return ClusterSyncTransport(client)
    return client


def async_transport(client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
                    | PipelinedConnection | AsyncTransport) -> AsyncTransport:
    """The transport for an asyncio client (a transport is returned as it is)."""
    if isinstance(client, PipelinedTransport | RedisAsyncTransport):  # the common case
        return client
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        return ClusterAsyncTransport(client)
    if isinstance(client, PipelinedConnection):
        return PipelinedTransport(client)
    if isinstance(client, redis.asyncio.Redis):
        return RedisAsyncTransport(client)
    return client


#: What the asyncio runners take: a client, pyqueue's connection or a transport.
AsyncClientLike = (redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster | PipelinedConnection
                   | AsyncTransport)


# --- runners --------------------------------------------------------------------

def _typed(exc: BaseException) -> BaseException:
    """The error to throw into a plan for a failed submit: pyqueue's own errors
    (raised by pyqueue's connections) as they are, redis-py's translated."""
    return exc if isinstance(exc, RedisError) else translate(exc)


def run_sync(client: redis.Redis | redis.cluster.RedisCluster | SyncConnection | SyncTransport,
             plan: Plan[T]) -> T:
    """Drive ``plan`` with a synchronous client; returns its result."""
    transport = sync_transport(client)
    try:
        batch = next(plan)
        while True:
            try:
                got = transport.execute_batch(batch)
            except (rexc.RedisError, RedisError) as exc:
                batch = plan.throw(_typed(exc))
                continue
            outcome = settle(batch, got)
            if type(outcome) is Redo:
                try:
                    again = transport.execute_batch(outcome.commands(batch))
                except (rexc.RedisError, RedisError) as exc:
                    batch = plan.throw(_typed(exc))
                    continue
                outcome = settle(batch, merge_redo(got, outcome, again), redone=True)
            if type(outcome) is Fail:
                batch = plan.throw(outcome.error)
            else:
                assert isinstance(outcome, list)
                batch = plan.send(outcome)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def run_async(client: AsyncClientLike,
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
            except (rexc.RedisError, RedisError) as exc:
                batch = plan.throw(_typed(exc))
                continue
            if len(batch) == 1:
                if not isinstance(got, BaseException):  # all is well: settle() says so
                    batch = plan.send([got])
                    continue
                got = [got]
            outcome = settle(batch, got)
            if type(outcome) is Redo:
                try:
                    again = await submit(outcome.commands(batch))
                except (rexc.RedisError, RedisError) as exc:
                    batch = plan.throw(_typed(exc))
                    continue
                if outcome.size == 1:
                    again = [again]
                outcome = settle(batch, merge_redo(got, outcome, again), redone=True)
            if type(outcome) is Fail:
                batch = plan.throw(outcome.error)
            else:
                assert isinstance(outcome, list)
                batch = plan.send(outcome)
    except StopIteration as stop:
        result: T = stop.value
        return result


#: Called once with a plan's result: ``(value, None)`` or ``(None, error)``.
OnDone = Callable[[Any, BaseException | None], None]


def start_async(client: AsyncClientLike,
                plan: Plan[T], *, immediate: bool = False) -> asyncio.Future[T]:
    """Start ``plan`` now and return a future of its result.

    The first batch is submitted before this returns (written at once with
    ``immediate``, when the connection is up); the plan is advanced from the
    replies' done-callbacks, so no task or coroutine is made for it.
    Cancelling the returned future abandons the plan (replies in flight are
    dropped). Must be called with a running event loop.
    """
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    _Driver(async_transport(client), plan, immediate, partial(settle_future, future),
            future).advance(None, None)
    return future


def settle_future(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    """Give ``future`` a plan's outcome (an :data:`OnDone` once bound to it):
    ``value``, or ``error`` raised (cancelled for a ``CancelledError``); nothing
    if the future is done already."""
    if future.done():
        return
    if error is None:
        future.set_result(value)
    elif isinstance(error, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(error)


def drive_async(client: AsyncClientLike,
                plan: Plan[Any], on_done: OnDone, *, immediate: bool = False) -> None:
    """Like :func:`start_async`, but call ``on_done(value, error)`` directly
    from the last reply's callback instead of settling a future: a caller
    that would only add a done-callback to that future saves one event-loop
    turn per plan (the worker's finishes)."""
    _Driver(async_transport(client), plan, immediate, on_done, None).advance(None, None)


class _Driver:
    """The state of one plan run by :func:`start_async` / :func:`drive_async`."""

    __slots__ = ("batch", "done", "got", "immediate", "on_done", "owner", "plan", "redo",
                 "transport")

    def __init__(self, transport: AsyncTransport, plan: Plan[Any], immediate: bool,
                 on_done: OnDone, owner: asyncio.Future[Any] | None) -> None:
        self.transport = transport
        self.plan = plan
        self.immediate = immediate
        self.on_done = on_done
        self.owner = owner  # the caller's future: cancelling it abandons the plan
        self.done = False
        self.batch: Batch = ()
        self.got: list[Any] = []
        self.redo: Redo | None = None

    def _finish(self, value: Any, error: BaseException | None) -> None:
        if not self.done:
            self.done = True
            self.on_done(value, error)

    def advance(self, replies: list[Any] | None, error: BaseException | None) -> None:
        """Give the plan its replies (or throw ``error`` into it) and submit the
        batch it yields next, or settle the result."""
        try:
            if error is not None:
                batch = self.plan.throw(error)
            elif replies is None:
                batch = next(self.plan)
            else:
                batch = self.plan.send(replies)
        except StopIteration as stop:
            self._finish(stop.value, None)
            return
        except BaseException as exc:
            self._finish(None, exc)
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise
            return
        self.batch = batch
        self.redo = None
        self.transport.submit(batch, self.immediate).add_done_callback(self._replied)

    def _replied(self, future: asyncio.Future[Any]) -> None:
        owner = self.owner
        if self.done or (owner is not None and owner.done()):  # abandoned by the caller
            self.done = True
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
            if redo.size == 1:
                got = [got]
            outcome = settle(batch, merge_redo(self.got, redo, got), redone=True)
        if type(outcome) is Redo:
            self.got, self.redo = got, outcome
            self.transport.submit(outcome.commands(batch), True) \
                .add_done_callback(self._replied)
        elif type(outcome) is Fail:
            self.advance(None, outcome.error)
        else:
            assert isinstance(outcome, list)
            self.advance(outcome, None)
