"""pyqueue's own RESP2 connections to Redis, the names the rest of pyqueue
imports (each part lives in its own module).

- :mod:`._resp_options`: :class:`Options` (where and how to connect, read
  from a redis-py client by :func:`options_from`) and the handshake (AUTH,
  SELECT, CLIENT SETNAME);
- :mod:`._resp_encode`: commands in RESP;
- :mod:`._resp_errors`: error replies as redis-py's exceptions, and the
  ``RedisConnectionError`` for each way a connection fails;
- :mod:`._resp_async`: :class:`PipelinedConnection`, the worker's
  auto-pipelined asyncio connection;
- :mod:`._resp_sync`: :class:`SyncConnection`, the producers' pool of
  sockets.

Both connections speak only what pyqueue needs (TCP, unix sockets, TLS;
RESP2), hand error replies back as the exception objects redis-py raises,
raise pyqueue's :class:`~pyqueue.errors.RedisConnectionError` naming the
server's address (never the credentials) when the connection fails, and never
send a command twice: once written, a lost reply fails saying the commands
may have been applied (a retry is safe only with job ids).
"""

from __future__ import annotations

from ._resp_async import PipelinedConnection
from ._resp_encode import encode_batch, encode_command
from ._resp_errors import MAY_HAVE_BEEN_APPLIED
from ._resp_options import Options, options_from
from ._resp_sync import SyncConnection

__all__ = [
    "MAY_HAVE_BEEN_APPLIED",
    "Options",
    "PipelinedConnection",
    "SyncConnection",
    "encode_batch",
    "encode_command",
    "options_from",
]
