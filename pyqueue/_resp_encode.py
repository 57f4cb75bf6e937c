"""RESP encoding of commands: words, whole commands and batches (shared by
both connections and the script layer, which pre-encodes the words that never
change).

Like redis-py's encoder, it takes ``bytes``, ``str``, ``int`` and ``float``
and refuses anything else (``None``, ``bool``, containers, objects) with
:class:`~pyqueue.errors.InvalidJobDataError` (a ``TypeError``) before a byte
is sent, instead of sending ``"None"`` or ``"True"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import InvalidJobDataError


def encode_args(args: Sequence[Any]) -> bytes:
    """Words as RESP bulk strings, without the array header."""
    parts = []
    for arg in args:
        kind = type(arg)
        if kind is bytes:
            data = arg
        elif kind is str:
            data = arg.encode()
        elif kind is int:
            data = b"%d" % arg
        elif kind is float:
            data = repr(arg).encode()
        else:
            data = _encode_other(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _encode_other(arg: Any) -> bytes:
    """Subclasses of the accepted types (an ``IntEnum``, a ``str`` enum) and
    byte buffers; everything else is refused."""
    if isinstance(arg, bool) or arg is None:
        pass
    elif isinstance(arg, bytes | bytearray | memoryview):
        return bytes(arg)
    elif isinstance(arg, str):
        return str.__str__(arg).encode()
    elif isinstance(arg, int):
        return b"%d" % arg
    elif isinstance(arg, float):
        return float.__repr__(arg).encode()
    raise InvalidJobDataError(
        f"cannot send a value of type {type(arg).__name__} to Redis: "
        "convert it to bytes, str, int or float first")


def encode(args: Sequence[Any]) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(args) + encode_args(args)


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


def encode_batch(commands: Sequence[Any]) -> bytes:
    """Commands in RESP, one after the other (one write)."""
    return b"".join([encode_command(command) for command in commands])
