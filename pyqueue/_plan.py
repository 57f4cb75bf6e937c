"""Operations described once, run by a sync or an async Redis client.

An operation is a generator (a *plan*) that yields batches of commands and
receives their replies; each batch costs one round trip (a non-transactional
pipeline when it holds more than one command). :func:`run_sync` and
:func:`run_async` drive the same plan with ``redis.Redis`` or
``redis.asyncio.Redis``, so ``Queue`` and ``AsyncQueue`` share every line of
logic and differ only in how they wait.

Scripts are sent with EVALSHA; a ``NOSCRIPT`` reply (after a restart or a
``SCRIPT FLUSH``) is answered by re-sending that command with EVAL, which
also reloads the script cache, so callers never see it.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.exceptions as rexc

from ._resp import PipelinedConnection, SyncConnection
from .errors import RedisConnectionError, RedisStateError

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


def translate(exc: Exception) -> Exception:
    """Map a redis-py exception to pyqueue's tree (the one place that does)."""
    if isinstance(exc, rexc.ConnectionError | rexc.TimeoutError):
        return RedisConnectionError(f"Redis connection failed: {exc}")
    if isinstance(exc, rexc.OutOfMemoryError | rexc.ReadOnlyError | rexc.NoPermissionError):
        return RedisStateError(f"Redis refused the command ({type(exc).__name__}): {exc}")
    if isinstance(exc, rexc.ResponseError):
        text = str(exc)
        if text.startswith(("OOM", "READONLY", "NOPERM", "MISCONF", "UNBLOCKED")):
            return RedisStateError(f"Redis refused the command: {text}")
    return exc


def needs_reconnect(exc: BaseException) -> bool:
    """True when the server we talk to stopped being a writable primary (a
    failover demoted it): the connection must be dropped so that a new one
    reaches the new primary."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, rexc.ReadOnlyError):
            return True
        if isinstance(seen, rexc.ResponseError) and (
                "READONLY" in str(seen) or str(seen).startswith("UNBLOCKED")):
            return True
        seen = seen.__cause__
    return False


def raise_error_reply(reply: Any) -> Any:
    """A reply taken from the connection directly (not through a plan runner),
    treated as the runners treat it: an error reply is raised as pyqueue's
    exception, except ``NoScriptError``, which is returned (the script did
    not run; send it again through a plan, which reloads it)."""
    if isinstance(reply, rexc.RedisError) and not _is_noscript(reply):
        raise translate(reply) from reply
    return reply


def _is_noscript(reply: Any) -> bool:
    return isinstance(reply, rexc.NoScriptError)


def run_sync(client: redis.Redis | SyncConnection, plan: Plan[T]) -> T:
    """Drive ``plan`` with a synchronous client."""
    try:
        batch = next(plan)
        while True:
            replies = _execute_sync(client, batch)
            batch = plan.send(replies)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    except rexc.RedisError as exc:
        raise translate(exc) from exc


async def run_async(client: redis.asyncio.Redis | PipelinedConnection, plan: Plan[T]) -> T:
    """Drive ``plan`` with an asyncio client."""
    try:
        batch = next(plan)
        while True:
            replies = await _execute_async(client, batch)
            batch = plan.send(replies)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    except rexc.RedisError as exc:
        raise translate(exc) from exc


def _execute_sync(client: redis.Redis | SyncConnection, batch: Batch) -> list[Any]:
    if isinstance(client, SyncConnection):
        got = client.execute_batch(batch)
        redo = [i for i, reply in enumerate(got) if _is_noscript(reply)]
        if redo:
            again = client.execute_batch([Command(batch[i].eval_words()) for i in redo])
            for i, reply in zip(redo, again, strict=True):
                got[i] = reply
        _raise_first_error(got)
        return got
    execute: Any = client.execute_command  # untyped upstream
    if len(batch) == 1:
        command = batch[0]
        try:
            return [execute(*command.words())]
        except rexc.NoScriptError:
            return [execute(*command.eval_words())]
    pipe: Any = client.pipeline(transaction=False)
    for command in batch:
        pipe.execute_command(*command.words())
    replies: list[Any] = pipe.execute(raise_on_error=False)
    retry = [i for i, reply in enumerate(replies) if _is_noscript(reply)]
    for i in retry:
        replies[i] = execute(*batch[i].eval_words())
    _raise_first_error(replies)
    return replies


async def _execute_async(client: redis.asyncio.Redis | PipelinedConnection,
                         batch: Batch) -> list[Any]:
    if isinstance(client, PipelinedConnection):
        got = await client.execute_batch(batch)
        redo = [i for i, reply in enumerate(got) if _is_noscript(reply)]
        if redo:
            again = await client.execute_batch([Command(batch[i].eval_words()) for i in redo])
            for i, reply in zip(redo, again, strict=True):
                got[i] = reply
        _raise_first_error(got)
        return got
    execute: Any = client.execute_command  # untyped upstream
    if len(batch) == 1:
        command = batch[0]
        try:
            return [await execute(*command.words())]
        except rexc.NoScriptError:
            return [await execute(*command.eval_words())]
    pipe: Any = client.pipeline(transaction=False)
    for command in batch:
        pipe.execute_command(*command.words())
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    retry = [i for i, reply in enumerate(replies) if _is_noscript(reply)]
    for i in retry:
        replies[i] = await execute(*batch[i].eval_words())
    _raise_first_error(replies)
    return replies


def _raise_first_error(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, rexc.RedisError):
            raise reply
