"""RESP encoding of command words (shared by the pipelined connection and the
script layer, which pre-encodes the words that never change)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def encode_args(args: Sequence[Any]) -> bytes:
    """Words as RESP bulk strings, without the array header."""
    parts = []
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int | float):
            data = repr(arg).encode()
        else:
            data = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def encode(args: Sequence[Any]) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(args) + encode_args(args)
