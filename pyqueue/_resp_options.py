"""Where and how pyqueue's own RESP connections connect: :class:`Options`,
read from a redis-py client's settings (address, credentials, database, TLS
context), and the handshake commands that open a connection.

:func:`options_from` returns ``None`` for a client using something these
connections do not support (a credential provider, RESP3, a client-side
cache, a custom connection class): the caller then keeps using redis-py.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

#: Connection settings of a redis-py client that this module understands.
_HANDLED = {
    "host", "port", "path", "db", "username", "password", "client_name",
    "socket_connect_timeout", "socket_timeout", "socket_keepalive", "socket_keepalive_options",
    "health_check_interval", "retry_on_timeout", "retry_on_error", "retry", "decode_responses",
    "encoding", "encoding_errors", "protocol", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path",
    "ssl_ca_data", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname", "ssl_password",
    "himport_registry", "maint_notifications_pool_handler", "maint_notifications_config",
    "orig_host_address", "orig_socket_timeout", "orig_socket_connect_timeout",
    "lib_name", "lib_version", "socket_type", "cache", "cache_config", "event_dispatcher",
    "driver_info", "legacy_responses", "socket_read_size",
}
#: Settings understood only when unset: a credential provider or a custom
#: connect function means the client does something these connections do not.
_UNSET_ONLY = ("credential_provider", "redis_connect_func")


@dataclass(frozen=True)
class Options:
    """Where and how to connect."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    db: int = 0
    username: str | None = None
    #: Never shown: not in the repr, not in any error message.
    password: str | None = field(default=None, repr=False)
    client_name: str | None = None
    ssl_context: ssl.SSLContext | None = None
    #: Bounds the TCP (and TLS) connect, and separately the handshake
    #: (AUTH, SELECT, CLIENT SETNAME) that follows it.
    connect_timeout: float = 5.0

    @property
    def address(self) -> str:
        """The server's address for messages: ``host:port`` or ``unix:path``
        (never the credentials)."""
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def options_from(client: redis.asyncio.Redis | redis.Redis | object,
                 client_name: str | None = None) -> Options | None:
    """The settings of a redis-py client (sync or asyncio), or ``None`` when it
    uses something these connections do not support (then keep using redis-py),
    a cluster client among them (pyqueue's connections do not route by slot)."""
    if not isinstance(client, redis.asyncio.Redis | redis.Redis):
        return None
    pool = client.connection_pool
    return options_from_kwargs(dict(pool.connection_kwargs), pool.connection_class.__name__,
                               client_name)


def options_from_kwargs(kwargs: dict[str, Any], cls_name: str,
                        client_name: str | None = None) -> Options | None:
    """:func:`options_from` for a connection class's name and its kwargs (as a
    redis-py pool or cluster node holds them)."""
    if any(kwargs.pop(name, None) is not None for name in _UNSET_ONLY):
        return None
    if set(kwargs) - _HANDLED or kwargs.get("protocol") not in (None, 2, "2"):
        return None
    if kwargs.get("cache") is not None:
        return None
    context = None
    if cls_name == "SSLConnection":
        context = _ssl_context(kwargs)
    elif cls_name not in ("Connection", "UnixDomainSocketConnection"):
        return None
    return Options(
        host=str(kwargs.get("host") or "127.0.0.1"),
        port=int(kwargs.get("port") or 6379),
        path=kwargs.get("path") if cls_name == "UnixDomainSocketConnection" else None,
        db=int(kwargs.get("db") or 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        client_name=client_name or kwargs.get("client_name"),
        ssl_context=context,
        connect_timeout=float(kwargs.get("socket_connect_timeout") or 5.0),
    )


def _ssl_context(kwargs: dict[str, Any]) -> ssl.SSLContext:
    reqs = kwargs.get("ssl_cert_reqs", "required")
    if isinstance(reqs, str):
        reqs = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                "required": ssl.CERT_REQUIRED}[reqs.lower()]
    context = ssl.create_default_context(cafile=kwargs.get("ssl_ca_certs"),
                                         capath=kwargs.get("ssl_ca_path"),
                                         cadata=kwargs.get("ssl_ca_data"))
    check = kwargs.get("ssl_check_hostname")
    context.check_hostname = bool(check if check is not None else reqs != ssl.CERT_NONE) \
        and reqs != ssl.CERT_NONE
    context.verify_mode = reqs
    if kwargs.get("ssl_certfile"):
        context.load_cert_chain(kwargs["ssl_certfile"], kwargs.get("ssl_keyfile"),
                                kwargs.get("ssl_password"))
    return context


def handshake_commands(opts: Options) -> list[tuple[Any, ...]]:
    """The commands that open a connection: AUTH, SELECT, CLIENT SETNAME."""
    commands: list[tuple[Any, ...]] = []
    if opts.password is not None:
        commands.append(("AUTH", opts.username, opts.password) if opts.username
                        else ("AUTH", opts.password))
    if opts.db:
        commands.append(("SELECT", opts.db))
    if opts.client_name:
        commands.append(("CLIENT", "SETNAME", opts.client_name))
    return commands

