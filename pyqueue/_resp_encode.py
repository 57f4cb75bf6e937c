"""RESP encoding of command words (shared by the pipelined connection and the
script layer, which pre-encodes the words that never change).

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
