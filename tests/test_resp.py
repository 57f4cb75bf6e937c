"""pyqueue's own RESP connections (``pyqueue/_resp.py``): the sync pool and the
asyncio pipelined connection, against small TCP servers written here (a
listener that never answers, one that dribbles a reply byte by byte, one that
is not Redis, one that turns clients away, a proxy that loses a reply) and
the session's real redis-server (a TLS one of its own for the TLS tests).

The promises under test (DESIGN.md, "never resend a command whose send
succeeded"; docs/guarantees.md): every connection failure is pyqueue's
``RedisConnectionError`` naming host:port and never the password; the
handshake is bounded by the connect timeout; a batch is written once or the
call raises saying it may have been applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from _tls import CertError, make_certs

from pyqueue import AsyncQueue, InvalidJobDataError, Queue, RedisConnectionError
from pyqueue._resp import Options, PipelinedConnection, SyncConnection, options_from
from pyqueue._resp_encode import encode_args
from pyqueue._server import RedisServer

PASSWORD = "pw-Zq81-secret"  # distinctive: a substring search cannot miss it
#: Slack over a timeout on a 2-core machine shared with other test runs.
MARGIN = 2.0


# --------------------------------------------------------------------------- helpers


class Stub:
    """A TCP listener on 127.0.0.1 (port 0); ``handler(sock)`` runs per connection
    in a thread of its own."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.handler = handler
        self.accepted = 0
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="stub")
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._socks.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.handler(sock)

    def options(self, **kwargs: Any) -> Options:
        return Options(host="127.0.0.1", port=self.port, **kwargs)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def stub(handler: Callable[[socket.socket], None]) -> Iterator[Stub]:
    server = Stub(handler)
    try:
        yield server
    finally:
        server.close()


def silent(sock: socket.socket) -> None:
    """Accept and never answer (reads, so the client's send never blocks)."""
    sock.settimeout(30)
    while sock.recv(65536):
        pass


def read_command(sock: socket.socket) -> bytes:
    """Read until one whole RESP array of bulk strings has arrived."""
    data = b""
    sock.settimeout(10)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        # header, then 2 lines per word, then the empty tail after the last \r\n
        if lines[0].startswith(b"*") and len(lines) >= 2 + 2 * int(lines[0][1:]):
            return data


def answer_pings(reply: bytes, pace: float = 0.0) -> Callable[[socket.socket], None]:
    """A server that answers every command with ``reply``, byte by byte when ``pace``."""
    def handler(sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while read_command(sock):
            if pace:
                for i in range(len(reply)):
                    sock.sendall(reply[i:i + 1])
                    time.sleep(pace)  # pacing the stub's bytes, not synchronisation
            else:
                sock.sendall(reply)
    return handler


def redis_options(url: str, **client_kwargs: Any) -> Options:
    client = redis.Redis.from_url(url, **client_kwargs)
    try:
        options = options_from(client)
    finally:
        client.close()
    assert options is not None
    return options


def assert_names_address(exc: BaseException, port: int) -> None:
    text = str(exc)
    assert f"127.0.0.1:{port}" in text, text
    assert PASSWORD not in text and PASSWORD not in repr(exc), text


def run_async(coro: Any, limit: float = 30.0) -> Any:
    """Run ``coro`` with an outer limit, so a hang fails the test instead of the suite."""
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, limit)
    return asyncio.run(bounded())


@pytest.fixture
def acl_user(redis_client: redis.Redis) -> Iterator[str]:
    """A user with a password on the session's server (removed afterwards)."""
    user = f"u{uuid4().hex[:10]}"
    redis_client.execute_command("ACL", "SETUSER", user, "on", f">{PASSWORD}", "~*", "&*",
                                 "+@all")
    try:
        yield user
    finally:
        redis_client.execute_command("ACL", "DELUSER", user)


# --------------------------------------------------------------------------- options, encoding


def test_options_repr_never_shows_the_password(redis_url: str) -> None:
    options = Options(host="h", port=1, username="alice", password=PASSWORD)
    assert PASSWORD not in repr(options) and PASSWORD not in str(options)
    assert "alice" in repr(options)
    host_port = redis_url.split("//", 1)[1].split("/", 1)[0]
    from_client = redis_options(f"redis://alice:{PASSWORD}@{host_port}/0")
    assert from_client.password == PASSWORD  # kept, only not shown
    assert PASSWORD not in repr(from_client)


@pytest.mark.parametrize("bad", [None, True, False, [1], {"a": 1}, object()])
def test_encode_refuses_what_redis_py_refuses(bad: Any) -> None:
    with pytest.raises(InvalidJobDataError) as info:
        encode_args(["SET", "k", bad])
    assert isinstance(info.value, TypeError)
    assert type(bad).__name__ in str(info.value)


def test_encode_takes_numbers_and_text_like_redis_py() -> None:
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    assert encode_args([b"b", "s", 7, -1, 1.5, Level.HIGH, bytearray(b"x")]) == (
        b"$1\r\nb\r\n$1\r\ns\r\n$1\r\n7\r\n$2\r\n-1\r\n$3\r\n1.5\r\n$1\r\n3\r\n$1\r\nx\r\n")


def test_bad_argument_is_refused_before_anything_is_sent(redis_url: str,
                                                        redis_client: redis.Redis) -> None:
    key = f"resp:{uuid4().hex}"
    conn = SyncConnection(redis_options(redis_url))
    try:
        with pytest.raises(InvalidJobDataError):
            conn.execute_batch([("SET", key, "1"), ("SET", key, None)])
        assert redis_client.exists(key) == 0  # not even the good first command
        assert conn.execute_batch([("PING",)]) == ["PONG"]
    finally:
        conn.close()


def test_async_bad_argument_leaves_the_connection_in_step(redis_url: str) -> None:
    """A refused command queues nothing: the next replies still match their commands."""
    async def main() -> list[Any]:
        conn = PipelinedConnection(redis_options(redis_url))
        try:
            await conn.execute_batch([("PING",)])
            with pytest.raises(InvalidJobDataError):
                await conn.execute_batch([("ECHO", "a"), ("ECHO", True)])
            return await conn.execute_batch([("ECHO", "b"), ("ECHO", "c")])
        finally:
            await conn.aclose()
    assert run_async(main()) == ["b", "c"]


# --------------------------------------------------------------------------- partial frames


def test_sync_reply_dribbled_byte_by_byte() -> None:
    reply = b"*2\r\n$11\r\nhello world\r\n:42\r\n"
    with stub(answer_pings(reply, pace=0.002)) as server:
        conn = SyncConnection(server.options(), timeout=5)
        try:
            assert conn.execute_batch([("PING",)]) == [["hello world", 42]]
            assert conn.execute_batch([("PING",)]) == [["hello world", 42]]
        finally:
            conn.close()
        assert server.accepted == 1  # the socket went back to the pool and was reused


def test_async_reply_dribbled_byte_by_byte() -> None:
    reply = b"$11\r\nhello world\r\n"
    with stub(answer_pings(reply, pace=0.002)) as server:
        async def main() -> list[Any]:
            conn = PipelinedConnection(server.options(), timeout=5)
            try:
                first = await conn.execute_batch([("PING",)])
                return first + await conn.execute_batch([("PING",)])
            finally:
                await conn.aclose()
        assert run_async(main()) == ["hello world", "hello world"]


# --------------------------------------------------------------------------- handshake


def test_wrong_password_is_a_typed_error_without_the_password(redis_url: str,
                                                               acl_user: str) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    wrong = redis_options(f"redis://{acl_user}:{PASSWORD}x@127.0.0.1:{port}/0")
    right = redis_options(f"redis://{acl_user}:{PASSWORD}@127.0.0.1:{port}/0")
    sync_conn = SyncConnection(wrong)
    with pytest.raises(RedisConnectionError) as info:
        sync_conn.execute_batch([("PING",)])
    assert "credentials" in str(info.value)
    assert isinstance(info.value.__cause__, redis.exceptions.AuthenticationError)
    assert f"{PASSWORD}x" not in str(info.value)
    assert_names_address(info.value, port)
    ok = SyncConnection(right)
    assert ok.execute_batch([("ACL", "WHOAMI")]) == [acl_user]
    ok.close()

    async def main() -> None:
        conn = PipelinedConnection(wrong)
        with pytest.raises(RedisConnectionError) as ainfo:
            await conn.execute_batch([("PING",)])
        assert "credentials" in str(ainfo.value)
        assert_names_address(ainfo.value, port)
        await conn.aclose()
        good = PipelinedConnection(right)
        assert await good.execute_batch([("ACL", "WHOAMI")]) == [acl_user]
        await good.aclose()
    run_async(main())


HANDSHAKES = [pytest.param({"password": PASSWORD}, id="password"),
              pytest.param({"db": 3}, id="db"),
              pytest.param({"username": "u", "password": PASSWORD, "db": 1}, id="acl-db")]


@pytest.mark.parametrize("settings", HANDSHAKES)
def test_sync_handshake_times_out(settings: dict[str, Any]) -> None:
    """A server that accepts and never answers: the handshake gives up after the
    connect timeout (not the 10 s read timeout, not never)."""
    with stub(silent) as server:
        conn = SyncConnection(server.options(connect_timeout=0.5, **settings), timeout=10)
        begun = time.monotonic()
        with pytest.raises(RedisConnectionError) as info:
            conn.execute_batch([("PING",)])
        took = time.monotonic() - begun
    assert took < 0.5 + MARGIN, took
    assert "handshake" in str(info.value)
    assert_names_address(info.value, server.port)


@pytest.mark.parametrize("settings", HANDSHAKES)
def test_async_handshake_times_out(settings: dict[str, Any]) -> None:
    with stub(silent) as server:
        async def main() -> tuple[float, BaseException]:
            conn = PipelinedConnection(server.options(connect_timeout=0.5, **settings),
                                       timeout=10)
            begun = time.monotonic()
            try:
                with pytest.raises(RedisConnectionError) as info:
                    await conn.execute_batch([("PING",)])
                return time.monotonic() - begun, info.value
            finally:
                await conn.aclose()
        took, exc = run_async(main())
    assert took < 0.5 + MARGIN, took
    assert "handshake" in str(exc)
    assert_names_address(exc, server.port)


def test_queues_with_a_password_fail_in_bounded_time_on_a_silent_server(
        queue_name: str) -> None:
    """The issue: ``AsyncQueue.add`` hung for minutes against such a server."""
    with stub(silent) as server:
        target = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/2?socket_connect_timeout=0.5"

        async def add_async() -> float:
            async with AsyncQueue(queue_name, connection=target) as queue:
                assert queue._fast is not None
                begun = time.monotonic()
                with pytest.raises(RedisConnectionError) as info:
                    await queue.add("job", {})
                assert_names_address(info.value, server.port)
                return time.monotonic() - begun
        assert run_async(add_async()) < 0.5 + MARGIN
        with Queue(queue_name, connection=target) as queue:
            assert queue._fast is not None
            begun = time.monotonic()
            with pytest.raises(RedisConnectionError) as info:
                queue.add("job", {})
            assert time.monotonic() - begun < 0.5 + MARGIN
            assert_names_address(info.value, server.port)


def reset_on_first_command(sock: socket.socket) -> None:
    read_command(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # RST


def close_on_first_command(sock: socket.socket) -> None:
    read_command(sock)
    sock.close()


@pytest.mark.parametrize("handler", [reset_on_first_command, close_on_first_command],
                         ids=["reset", "closed"])
def test_handshake_socket_errors_are_typed(handler: Callable[[socket.socket], None]) -> None:
    with stub(handler) as server:
        conn = SyncConnection(server.options(password=PASSWORD, connect_timeout=2))
        with pytest.raises(RedisConnectionError) as info:
            conn.execute_batch([("PING",)])
        assert_names_address(info.value, server.port)

        async def main() -> BaseException:
            aconn = PipelinedConnection(server.options(password=PASSWORD, connect_timeout=2))
            try:
                with pytest.raises(RedisConnectionError) as ainfo:
                    await aconn.execute_batch([("PING",)])
                return ainfo.value
            finally:
                await aconn.aclose()
        assert_names_address(run_async(main()), server.port)


def http_server(sock: socket.socket) -> None:
    sock.settimeout(10)
    sock.recv(65536)
    sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    sock.close()


@pytest.mark.parametrize("settings", [{}, {"password": PASSWORD}], ids=["plain", "password"])
def test_a_server_that_is_not_redis(settings: dict[str, Any]) -> None:
    with stub(http_server) as server:
        conn = SyncConnection(server.options(**settings))
        with pytest.raises(RedisConnectionError) as info:
            conn.execute_batch([("PING",)])
        assert "did not speak the Redis protocol" in str(info.value)
        assert_names_address(info.value, server.port)

        async def main() -> BaseException:
            aconn = PipelinedConnection(server.options(**settings))
            try:
                with pytest.raises(RedisConnectionError) as ainfo:
                    await aconn.execute_batch([("PING",)])
                return ainfo.value
            finally:
                await aconn.aclose()
        exc = run_async(main())
        assert "did not speak the Redis protocol" in str(exc)
        assert_names_address(exc, server.port)


def max_clients(sock: socket.socket) -> None:
    """What Redis does past ``maxclients``: an error, then close, before reading."""
    sock.sendall(b"-ERR max number of clients reached\r\n")
    sock.close()


@pytest.mark.parametrize("settings", [{}, {"password": PASSWORD, "db": 2}],
                         ids=["plain", "handshake"])
def test_max_clients_shows_redis_own_message(settings: dict[str, Any]) -> None:
    with stub(max_clients) as server:
        conn = SyncConnection(server.options(**settings))
        with pytest.raises(RedisConnectionError) as info:
            conn.execute_batch([("PING",), ("PING",)])
        assert "max number of clients reached" in str(info.value)
        assert_names_address(info.value, server.port)

        async def main() -> BaseException:
            aconn = PipelinedConnection(server.options(**settings))
            try:
                with pytest.raises(RedisConnectionError) as ainfo:
                    await aconn.execute_batch([("PING",), ("PING",)])
                return ainfo.value
            finally:
                await aconn.aclose()
        exc = run_async(main())
        assert "max number of clients reached" in str(exc)
        assert_names_address(exc, server.port)


# --------------------------------------------------------------------------- watchdog


def test_watchdog_fails_an_unanswered_command_within_the_timeout() -> None:
    with stub(silent) as server:
        async def main() -> tuple[float, BaseException]:
            conn = PipelinedConnection(server.options(), timeout=0.6)
            begun = time.monotonic()
            try:
                with pytest.raises(RedisConnectionError) as info:
                    await conn.execute_batch([("PING",)])
                return time.monotonic() - begun, info.value
            finally:
                await conn.aclose()
        took, exc = run_async(main())
    assert 0.6 <= took < 0.6 + MARGIN, took
    assert "did not answer within" in str(exc) and "may have been applied" in str(exc)
    assert_names_address(exc, server.port)


def test_sync_read_timeout_is_typed() -> None:
    with stub(silent) as server:
        conn = SyncConnection(server.options(), timeout=0.5)
        begun = time.monotonic()
        with pytest.raises(RedisConnectionError) as info:
            conn.execute_batch([("PING",)])
        assert time.monotonic() - begun < 0.5 + MARGIN
        assert "may have been applied" in str(info.value)
        assert_names_address(info.value, server.port)


# --------------------------------------------------------------------------- never twice


class LosingProxy:
    """Forwards to Redis; once ``arm()``ed, the next reply from Redis is dropped and
    the client's socket closed (the command ran, the client never hears)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.armed = threading.Event()
        self.swallowed = 0
        self.server = Stub(self._handle)
        self.port = self.server.port

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def arm(self) -> None:
        self.armed.set()

    def _handle(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 5)
        client.settimeout(None)

        def forward() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    upstream.sendall(data)
            with contextlib.suppress(OSError):
                upstream.close()
        threading.Thread(target=forward, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                if self.armed.is_set():
                    self.armed.clear()
                    self.swallowed += 1
                    break  # Redis answered; the client never gets it
                client.sendall(data)
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
            upstream.close()

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def losing_proxy(redis_url: str) -> Iterator[LosingProxy]:
    proxy = LosingProxy(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    try:
        yield proxy
    finally:
        proxy.close()


def test_sync_batch_is_never_sent_twice(losing_proxy: LosingProxy,
                                       redis_client: redis.Redis) -> None:
    key = f"resp:{uuid4().hex}"
    conn = SyncConnection(redis_options(losing_proxy.url()))
    try:
        assert conn.execute_batch([("PING",)]) == ["PONG"]  # a pooled, reused socket next
        losing_proxy.arm()
        with pytest.raises(RedisConnectionError) as info:
            conn.execute_batch([("INCR", key)])
        assert "may have been applied" in str(info.value)
        assert losing_proxy.swallowed == 1
        assert redis_client.get(key) == b"1"  # once, not twice
        assert conn.execute_batch([("INCR", key)]) == [2]  # and the next call reconnects
    finally:
        conn.close()
        redis_client.delete(key)


def test_queue_add_is_written_once_or_raises(losing_proxy: LosingProxy, queue_name: str,
                                             redis_client: redis.Redis) -> None:
    """The issue: an add without a job id was written twice (and add_bulk(2500)
    gave 5,000 jobs) when the reply was lost on a reused socket."""
    wait_key = f"bull:{queue_name}:wait"
    with Queue(queue_name, connection=losing_proxy.url()) as queue:
        assert queue._fast is not None
        queue.add("warm", {})
        losing_proxy.arm()
        with pytest.raises(RedisConnectionError):
            queue.add("once", {})
        assert redis_client.llen(wait_key) == 2
        losing_proxy.arm()
        with pytest.raises(RedisConnectionError):
            queue.add_bulk([{"name": "bulk", "data": {"i": i}} for i in range(300)])
        assert redis_client.llen(wait_key) == 302
        assert losing_proxy.swallowed == 2
        queue.add("after", {})  # the queue goes on working
        assert redis_client.llen(wait_key) == 303
        queue.obliterate(force=True)


def test_async_add_is_written_once_or_raises(losing_proxy: LosingProxy, queue_name: str,
                                             redis_client: redis.Redis) -> None:
    wait_key = f"bull:{queue_name}:wait"

    async def main() -> None:
        async with AsyncQueue(queue_name, connection=losing_proxy.url()) as queue:
            assert queue._fast is not None
            await queue.add("warm", {})
            losing_proxy.arm()
            with pytest.raises(RedisConnectionError):
                await queue.add("once", {})
            assert redis_client.llen(wait_key) == 2
            await queue.add("after", {})
            assert redis_client.llen(wait_key) == 3
            await queue.obliterate(force=True)
    run_async(main())


def test_idle_socket_closed_by_the_server_is_replaced_before_sending(
        redis_url: str, redis_client: redis.Redis) -> None:
    """CLIENT KILL of a pooled socket: the next call notices before writing and
    uses a new socket (no error, the command applied once)."""
    key = f"resp:{uuid4().hex}"
    conn = SyncConnection(redis_options(redis_url))
    try:
        (first_id,) = conn.execute_batch([("CLIENT", "ID")])
        redis_client.execute_command("CLIENT", "KILL", "ID", first_id)
        deadline = time.monotonic() + 5
        while first_id in {c["id"] for c in redis_client.client_list()}:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert conn.execute_batch([("INCR", key), ("CLIENT", "ID")])[0] == 1
        assert redis_client.get(key) == b"1"
    finally:
        conn.close()
        redis_client.delete(key)


# --------------------------------------------------------------------------- fork


def test_forked_child_never_uses_the_parents_socket(redis_url: str) -> None:
    conn = SyncConnection(redis_options(redis_url))
    (parent_id,) = conn.execute_batch([("CLIENT", "ID")])
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: ours is safe
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            (child_id,) = conn.execute_batch([("CLIENT", "ID")])
            os.write(write_end, str(child_id).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_said = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert int(child_said) != parent_id
    assert conn.execute_batch([("CLIENT", "ID")]) == [parent_id]  # the parent's is intact
    conn.close()


# --------------------------------------------------------------------------- TLS


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TLS:
    def __init__(self, server: RedisServer, port: int, ca: Path) -> None:
        self.server = server
        self.port = port
        self.ca = ca

    def url(self, password: str | None = None) -> str:
        auth = f":{password}@" if password else ""
        return f"rediss://{auth}localhost:{self.port}/0?ssl_ca_certs={self.ca}"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLS]:
    directory = tmp_path_factory.mktemp("resp-tls")
    try:
        certs = make_certs(directory)
    except CertError as exc:
        pytest.skip(f"cannot make test certificates: {exc}")
    port = free_port()
    server = RedisServer(extra_args=[
        "--tls-port", str(port), "--tls-cert-file", str(certs.cert),
        "--tls-key-file", str(certs.key), "--tls-ca-cert-file", str(certs.ca),
        "--tls-auth-clients", "no"])
    try:
        server.start()
    except RedisConnectionError as exc:
        server.stop()
        pytest.skip(f"this redis-server cannot serve TLS: {str(exc).splitlines()[-1]}")
    try:
        yield TLS(server, port, certs.ca)
    finally:
        server.stop()


def test_tls_sync_pool_reuses_its_socket_and_replaces_a_killed_one(tls_redis: TLS) -> None:
    options = redis_options(tls_redis.url())
    assert options.ssl_context is not None
    plain = redis.Redis.from_url(tls_redis.server.url)
    conn = SyncConnection(options)
    try:
        ids = {conn.execute_batch([("CLIENT", "ID")])[0] for _ in range(50)}
        assert len(ids) == 1, ids  # the check before reuse does not misread TLS records
        (first_id,) = ids
        plain.execute_command("CLIENT", "KILL", "ID", first_id)
        deadline = time.monotonic() + 5
        while first_id in {c["id"] for c in plain.client_list()}:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (second_id,) = conn.execute_batch([("CLIENT", "ID")])
        assert second_id != first_id
    finally:
        conn.close()
        plain.close()


def test_tls_async_connection_and_handshake(tls_redis: TLS) -> None:
    plain = redis.Redis.from_url(tls_redis.server.url)
    user = f"u{uuid4().hex[:10]}"
    plain.execute_command("ACL", "SETUSER", user, "on", f">{PASSWORD}", "~*", "+@all")
    try:
        options = redis_options(tls_redis.url().replace("localhost",
                                                        f"{user}:{PASSWORD}@localhost"))

        async def main() -> list[Any]:
            conn = PipelinedConnection(options)
            try:
                return await conn.execute_batch([("ACL", "WHOAMI"), ("PING",)])
            finally:
                await conn.aclose()
        assert run_async(main()) == [user, "PONG"]
    finally:
        plain.execute_command("ACL", "DELUSER", user)
        plain.close()
