"""Operations described once, as *plans*, and the pure decision on a batch's
replies that every runner shares (the runners are in :mod:`._runner`).

An operation is a generator (a plan) that yields batches of commands
(:class:`Command`, made by :func:`cmd` or by a :class:`Script`) and receives
their replies; each batch costs one round trip (a non-transactional pipeline
when it holds more than one command). One pure function, :func:`settle`, looks
at a batch and its replies and decides: send some commands again with EVAL
(:class:`Redo`: ``NOSCRIPT`` or a missing function, the script cache or the
function library was flushed or Redis restarted; EVAL also reloads the
script, the library is loaded in the same round trip, so callers never see
it), or fail with
pyqueue's error (:class:`Fail`, made by :func:`translate`, the one place that
maps Redis's errors), or hand the replies on to the plan.

An error is thrown into the plan at its ``yield`` (a plan may catch it to say
what it knows, as ``add_bulk`` does) and propagates from the runner when the
plan does not. A command built with ``errors_as_values=True`` gets its error
reply handed on as a pyqueue exception object instead.

The runner's names (:func:`run_sync`, :func:`run_async`, :func:`start_async`,
the transports) are re-exported here, so ``from ._plan import run_sync``
keeps working.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.exceptions as rexc

from .errors import (
    RedisBusyError,
    RedisConnectionError,
    RedisDataError,
    RedisError,
    RedisReplyError,
    RedisStateError,
)

T = TypeVar("T")


class LuaMode:
    """How this process calls pyqueue's scripts: as functions of the library
    (``FCALL``) or by SHA1 (``EVALSHA``). Starts with functions unless
    ``PYQUEUE_LUA=eval``; drops to EVALSHA for good the first time a server
    does not know ``FCALL`` or refuses it or ``FUNCTION LOAD`` to this user."""

    __slots__ = ("functions",)

    def __init__(self) -> None:
        self.functions = os.environ.get("PYQUEUE_LUA", "function").lower() != "eval"


#: The process's :class:`LuaMode`.
LUA = LuaMode()


@dataclass(frozen=True)
class Script:
    """A Lua script's name, assembled source and SHA1, and its function in
    the library (name and the library's text, for ``FUNCTION LOAD``)."""

    name: str
    source: str
    sha: str
    function: str
    library: str


@dataclass(slots=True)
class Command:
    """One Redis command or script call.

    ``args`` are the command's words; for a script call ``script`` is set and
    ``args`` are ``[numkeys, *keys, *argv]``.
    """

    args: tuple[Any, ...]
    script: Script | None = None
    #: RESP of the words that never change for this script and queue
    #: (FCALL function or EVALSHA sha, numkeys, keys, base) and how many words
    #: that is; ``tail`` holds the rest. Used by the pipelined connection.
    head: bytes | None = None
    head_count: int = 0
    tail: tuple[Any, ...] = ()
    #: Hand an error reply on to the plan (as pyqueue's exception object)
    #: instead of failing the plan: for a plan that knows what to do with it.
    errors_as_values: bool = False
    #: A script call made with FCALL (else EVALSHA).
    fcall: bool = False

    def call_words(self) -> tuple[Any, ...]:
        """The script call's words: FCALL or EVALSHA."""
        assert self.script is not None
        if self.fcall:
            return ("FCALL", self.script.function, *self.args)
        return ("EVALSHA", self.script.sha, *self.args)

    def eval_words(self) -> tuple[Any, ...]:
        assert self.script is not None
        return ("EVAL", self.script.source, *self.args)

    def words(self) -> tuple[Any, ...]:
        return self.call_words() if self.script is not None else self.args


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
#: redis-py's cluster client found no node to talk to (a class of redis-py 5.1+).
_CLUSTER_UNREACHABLE: Any = getattr(rexc, "RedisClusterUnreachableError", OSError)
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
                  | asyncio.TimeoutError | _CLUSTER_UNREACHABLE):
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
    """Send these commands of the batch again, with EVAL (their script or
    function was not loaded); then settle the batch again with the new
    replies in place. With ``load``, a ``FUNCTION LOAD`` of the library goes
    first in the same round trip (its reply is looked at, then dropped)."""

    indices: tuple[int, ...]
    load: str | None = None

    def commands(self, batch: Batch) -> list[Command]:
        """The commands to send."""
        again = [Command(batch[i].eval_words()) for i in self.indices]
        if self.load is not None:
            again.insert(0, Command(("FUNCTION", "LOAD", self.load), errors_as_values=True))
        return again

    @property
    def size(self) -> int:
        """How many commands :meth:`commands` sends."""
        return len(self.indices) + (self.load is not None)


def _script_missing(reply: BaseException, command: Command) -> str | None:
    """Why a script call's error reply means "send it again with EVAL":
    ``"script"`` (NOSCRIPT), ``"function"`` (the library is not loaded) or
    ``"unsupported"`` (this server or user cannot FCALL); else ``None``."""
    if command.script is None:
        return None
    if isinstance(reply, rexc.NoScriptError):
        return "script"
    if not command.fcall:
        return None
    text = str(reply)
    if isinstance(reply, rexc.NoPermissionError):
        return "unsupported" if "fcall" in text.lower() else None
    if type(reply) is rexc.ResponseError:
        if text.startswith("Function not found"):
            return "function"
        if text.startswith("unknown command") and "fcall" in text.lower():
            return "unsupported"
    return None


def _functions_refused(reply: Any) -> bool:
    """``FUNCTION LOAD``'s reply says this server or user cannot have it."""
    if not isinstance(reply, BaseException):
        return False
    text = str(reply).lower()
    return isinstance(reply, rexc.NoPermissionError) or text.startswith("unknown command")


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
    load: str | None = None
    fail: Fail | None = None
    handed = replies
    for i, reply in enumerate(replies):
        if not isinstance(reply, BaseException):
            continue
        missing = None if redone else _script_missing(reply, batch[i])
        if missing is not None:
            if redo is None:
                redo = []
            redo.append(i)
            if missing == "unsupported":
                LUA.functions = False
            elif missing == "function":
                script = batch[i].script
                assert script is not None
                load = script.library
        elif batch[i].errors_as_values:
            if handed is replies:
                handed = list(replies)
            handed[i] = translate(reply)
        elif fail is None:
            fail = Fail(translate(reply))
    if redo is not None:
        return Redo(tuple(redo), load)
    return fail if fail is not None else handed


def merge_redo(replies: list[Any], redo: Redo, again: Sequence[Any]) -> list[Any]:
    """``replies`` with the EVAL replies of a :class:`Redo` in their places
    (``again`` as :meth:`Redo.commands` sent them)."""
    if redo.load is not None:
        if _functions_refused(again[0]):
            LUA.functions = False
        again = again[1:]
    merged = list(replies)
    for i, reply in zip(redo.indices, again, strict=True):
        merged[i] = reply
    return merged


__all__ = [
    "LUA",
    "Batch",
    "Command",
    "Fail",
    "LuaMode",
    "Plan",
    "Redo",
    "Script",
    "cmd",
    "error_code",
    "exception_chain",
    "merge_redo",
    "needs_reconnect",
    "settle",
    "single",
    "translate",
]
