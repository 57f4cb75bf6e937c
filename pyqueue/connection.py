"""Turning a ``connection=`` argument into Redis clients.

``connection=`` accepts a URL (``redis://``, ``rediss://``, ``unix://``), a
ready ``redis.Redis`` / ``redis.asyncio.Redis`` client, or ``None``, which
means ``$PYQUEUE_REDIS_URL``, else ``$REDIS_URL``, else the embedded server
(:func:`pyqueue._embedded.embedded_url`).

A Redis Cluster: a ``redis.cluster.RedisCluster`` /
``redis.asyncio.cluster.RedisCluster`` client, or a URL
``redis+cluster://host:port`` (``rediss+cluster://`` for TLS) naming any one
node, from which the others are discovered (see :mod:`pyqueue._cluster`).

Clients that pyqueue creates from a URL use raw bytes
(``decode_responses=False``), TCP keepalive (not for ``unix://``), a 5 s
connect timeout (pyqueue's own connections also bound their handshake,
AUTH/SELECT/CLIENT SETNAME, by it), a :data:`SOCKET_TIMEOUT` read timeout (so a hung connection
is noticed), a health check after 30 s idle, and no retry on timeout: pyqueue's own loops
decide what to retry. Options in the URL's query string
(``?socket_timeout=...``) override these. A ``rediss://`` URL verifies the
server's certificate and host name (redis-py's default
``ssl_cert_reqs="required"``); pass ``?ssl_cert_reqs=none`` only for testing,
or ``ssl_ca_certs=...`` for a private CA.

Blocking commands (``BZPOPMIN``, ``XREAD BLOCK``) go through a separate
client from :func:`blocking_async_client`,
with no read timeout and its own single connection, so they never hold a
connection of the main pool.

Passwords never reach a log or an error message: :func:`mask_url`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from ._cluster import (
    CLUSTER_SCHEMES,
    async_cluster_from_url,
    is_cluster_url,
    sync_cluster_from_url,
)
from .errors import ConfigurationError

#: What a sync ``connection=`` becomes: a client of one server or of a cluster.
SyncClient = redis.Redis | redis.cluster.RedisCluster
#: What an asyncio ``connection=`` becomes.
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

__all__ = [
    "SOCKET_TIMEOUT",
    "async_client",
    "blocking_async_client",
    "mask_url",
    "resolve_url",
    "sync_client",
    "sync_twin",
]

#: URL schemes pyqueue accepts.
SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)

#: Read timeout (seconds) of the clients pyqueue creates, for every command
#: but the blocking ones.
SOCKET_TIMEOUT = 10.0

_CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": False,
    "health_check_interval": 30,
    "socket_connect_timeout": 5,
    "socket_timeout": SOCKET_TIMEOUT,
    "retry_on_timeout": False,
}

#: Connection kwargs that belong to the pool they came from, not to the server
#: they point at; a new pool makes its own.
_POOL_BOUND_KWARGS = (
    "maint_notifications_pool_handler",
    "orig_host_address",
    "orig_socket_timeout",
    "orig_socket_connect_timeout",
    "himport_registry",
    "cache",
    "cache_config",
)

#: redis-py's own URL parser (untyped upstream), to reject what it would reject.
_parse_url: Callable[[str], dict[str, Any]] = redis.connection.parse_url

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_QUERY_PASSWORD_RE = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


# --------------------------------------------------------------------------- URLs


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    ``redis://user:secret@host:6379/0`` becomes ``redis://user:***@host:6379/0``
    and ``redis://secret@host`` becomes ``redis://***@host``; a ``password=``
    query parameter is masked too. Use it wherever a URL is
    logged or put in a message.
    """
    match = _SCHEME_RE.match(url)
    prefix = match.group(0) if match else ""
    rest = url[len(prefix):]
    # The user info ends at the last '@' before the query. Passwords with an
    # unescaped '/' or '@' are covered by that; one with an unescaped '?' moves
    # its '@' into the "query", so fall back to the last '@' anywhere: masking
    # too much in a log line is harmless, showing a password is not.
    query = rest.find("?")
    at = rest.rfind("@", 0, query if query != -1 else len(rest))
    if at == -1:
        at = rest.rfind("@")
    if at != -1:
        user, colon, _ = rest[:at].partition(":")
        # Without a colon the user info is a user name to redis-py, but people
        # write ``redis://password@host`` too: mask it all.
        rest = f"{user}:***{rest[at:]}" if colon else f"***{rest[at:]}"
    return prefix + _QUERY_PASSWORD_RE.sub(r"\1***", rest)


def _validate_url(url: str, source: str) -> str:
    match = _SCHEME_RE.match(url)
    scheme = match.group(1) if match else ""
    if scheme not in SCHEMES:  # redis-py wants them in lower case
        shown = f"{scheme!r}" if scheme else "none"
        raise ConfigurationError(
            f"{source}: unsupported URL scheme {shown} in {mask_url(url)!r}; "
            "use redis://, rediss://, unix:// or redis+cluster://"
        )
    try:
        _parse_url(url.replace("+cluster://", "://", 1))
    except ValueError:
        raise ConfigurationError(
            f"{source}: invalid Redis URL {mask_url(url)!r}"
        ) from None
    return url


def resolve_url(connection: str | None) -> str:
    """Return the Redis URL that ``connection`` stands for.

    A URL is checked (scheme ``redis``, ``rediss`` or ``unix``) and returned
    as is. ``None`` means ``$PYQUEUE_REDIS_URL``, else ``$REDIS_URL`` (empty
    values count as unset), else the embedded server's URL, starting that
    server if needed. Raises :class:`ConfigurationError` for a bad URL; the
    message never contains the password.
    """
    if connection is None:
        for var in ("PYQUEUE_REDIS_URL", "REDIS_URL"):
            value = os.environ.get(var)
            if value:
                return _validate_url(value, f"${var}")
        from ._embedded import embedded_url

        return embedded_url()
    if not isinstance(connection, str):
        raise ConfigurationError(
            f"connection: expected a URL string or None, got {type(connection).__name__}"
        )
    return _validate_url(connection, "connection")


# --------------------------------------------------------------------------- clients


def _type_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _client_options(url: str) -> dict[str, Any]:
    if url[:7].lower() == "unix://":
        return _CLIENT_OPTIONS  # keepalive is a TCP option; unix sockets reject it
    return {**_CLIENT_OPTIONS, "socket_keepalive": True}


def sync_client(connection: str | SyncClient | None) -> tuple[SyncClient, bool]:
    """Return ``(client, owned)`` for a sync ``connection=`` argument.

    A ``redis.Redis`` or ``redis.cluster.RedisCluster`` is used as given
    (``owned`` is False: the caller keeps closing it). A URL or ``None`` makes
    a new client that pyqueue owns and must close (a cluster client for a
    ``redis+cluster://`` URL). Anything else, including a
    ``redis.asyncio.Redis``, raises :class:`ConfigurationError`.
    """
    if isinstance(connection, redis.Redis | redis.cluster.RedisCluster):
        return connection, False
    if connection is None or isinstance(connection, str):
        url = resolve_url(connection)
        if is_cluster_url(url):
            return sync_cluster_from_url(url, _client_options(url)), True
        return redis.Redis.from_url(url, **_client_options(url)), True
    raise ConfigurationError(
        "connection: expected a URL string, None or a redis.Redis client, got "
        f"{_type_name(connection)}"
        + (" (use the async API, e.g. AsyncQueue, with an asyncio client)"
           if isinstance(connection, redis.asyncio.Redis) else "")
    )


def async_client(
    connection: str | AsyncClient | None,
) -> tuple[AsyncClient, bool]:
    """Return ``(client, owned)`` for an asyncio ``connection=`` argument.

    A ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster`` is
    used as given (``owned`` is False). A URL or ``None`` makes a new client
    that pyqueue owns and must close. Anything else, including a sync
    ``redis.Redis``, raises :class:`ConfigurationError`.
    """
    if isinstance(connection, redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster):
        return connection, False
    if connection is None or isinstance(connection, str):
        url = resolve_url(connection)
        if is_cluster_url(url):
            return async_cluster_from_url(url, _client_options(url)), True
        return redis.asyncio.Redis.from_url(url, **_client_options(url)), True
    raise ConfigurationError(
        "connection: expected a URL string, None or a redis.asyncio.Redis client, got "
        f"{_type_name(connection)}"
        + (" (the asyncio API needs redis.asyncio.Redis, not redis.Redis)"
           if isinstance(connection, redis.Redis) else "")
    )


def _blocking_kwargs(connection_kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs = {k: v for k, v in connection_kwargs.items() if k not in _POOL_BOUND_KWARGS}
    kwargs["socket_timeout"] = None
    return kwargs


def blocking_async_client(client: redis.asyncio.Redis,
                          client_name: str | None = None) -> redis.asyncio.Redis:
    """A new asyncio client to the same server as ``client`` for blocking commands.

    Same connection settings (host or socket, db, credentials, TLS), but no
    read timeout and a pool of one connection of its own. The caller owns it
    (``await blocking.aclose()`` closes its pool too).
    """
    pool = client.connection_pool
    kwargs = _blocking_kwargs(pool.connection_kwargs)
    if client_name is not None:
        kwargs["client_name"] = client_name
    new_pool = redis.asyncio.ConnectionPool(
        connection_class=pool.connection_class,
        max_connections=1,
        **kwargs,
    )
    return redis.asyncio.Redis.from_pool(new_pool)


_SYNC_CLASSES: dict[str, Any] = {
    "Connection": redis.connection.Connection,
    "SSLConnection": redis.connection.SSLConnection,
    "UnixDomainSocketConnection": redis.connection.UnixDomainSocketConnection,
}


def sync_twin(client: redis.asyncio.Redis) -> redis.Redis:
    """A new sync client to the same server as the asyncio ``client``.

    Used by the worker's lock-renewal thread, which must not depend on the
    event loop. The caller owns it.
    """
    pool = client.connection_pool
    connection_class = _SYNC_CLASSES.get(pool.connection_class.__name__,
                                         redis.connection.Connection)
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in _POOL_BOUND_KWARGS}
    new_pool = redis.ConnectionPool(connection_class=connection_class, **kwargs)
    return redis.Redis.from_pool(new_pool)
