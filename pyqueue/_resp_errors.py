"""How pyqueue's RESP connections report failures: Redis's error replies as
the exceptions redis-py raises, and a :class:`~pyqueue.errors.RedisConnectionError`
naming the server's address (never the credentials) for each way a connection
fails.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions as rexc
from redis._parsers import BaseParser

from ._resp_options import Options
from .errors import RedisConnectionError

#: Added to an error raised after a batch was written: Redis may have run it.
MAY_HAVE_BEEN_APPLIED = "; the commands may have been applied"


def parse_error(reply: Exception) -> Exception:
    """An error reply (as hiredis gives it) as the exception class redis-py raises."""
    parse: Any = BaseParser.parse_error  # untyped upstream
    error: Exception = parse(str(reply))
    return error


def handshake_error(opts: Options, reply: BaseException) -> RedisConnectionError:
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


def refused(opts: Options, reply: Exception) -> RedisConnectionError:
    """Redis turned the client away (it closes the connection after this reply)."""
    error = RedisConnectionError(f"Redis at {opts.address} refused the connection: {reply}")
    error.__cause__ = reply
    return error


def not_redis(opts: Options, exc: Exception) -> RedisConnectionError:
    """The peer answered with something that is not RESP."""
    error = RedisConnectionError(
        f"the server at {opts.address} did not speak the Redis protocol ({exc}); "
        "is it a Redis server?")
    error.__cause__ = exc
    return error


def handshake_timeout(opts: Options) -> RedisConnectionError:
    """The handshake was not answered within the connect timeout."""
    return RedisConnectionError(
        f"Redis at {opts.address} did not answer the connection handshake "
        f"(AUTH/SELECT/CLIENT SETNAME) within {opts.connect_timeout:g} s")
