"""Security guarantees: ACL users, TLS verified by default, no password leaks, JSON only.

The issue: "``rediss://`` with certificate verification on by default, ACL
users, passwords never in logs/failed reasons/events; JSON only, never
pickle."

Every server here is one the test starts itself on 127.0.0.1:

* ``acl_server``: the default user is off; only ``alice`` (a password)
  may log in, so a client that forgets the user name in ``AUTH`` (it would
  log in as ``default``) cannot do anything.
* ``tls_server``: a plain port (for RedisServer's readiness probe) plus a TLS
  port whose certificate, signed by a private CA made with the ``openssl`` CLI
  (tests/_tls.py), names only ``localhost``. Skipped when redis-server has no
  TLS support or there is no openssl.

The queue and worker hot paths (``Queue._fast``, ``AsyncQueue._fast``,
``Worker._fast``) are pyqueue's own connections, which take AUTH, SELECT and
TLS from the redis-py client's settings; the tests assert they are in use, so
a job that goes end to end proves they authenticate, select the db and verify
TLS themselves.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import _proc_jobs
import pytest
import redis
from _tls import CertError, make_certs
from _worker_helpers import wait_for
from redis.backoff import NoBackoff
from redis.retry import Retry

from pyqueue import (
    AsyncQueue,
    ConfigurationError,
    InvalidJobDataError,
    Job,
    PyQueueError,
    Queue,
    RedisConnectionError,
    Worker,
)
from pyqueue._server import RedisServer

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pyqueue"

USER = "alice"
PASSWORD = "s3cret-Pass-7Qz"  # distinctive, so a substring search cannot miss it
WRONG = "Wr0ngPa55-x9K"

ACL_ARGS = [
    "--user", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all",
    "--user", "default", "off",
]


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def url(port: int, *, password: str = PASSWORD, db: int = 0, user: str = USER) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{port}/{db}"


def exception_text(exc: BaseException) -> str:
    """Everything a user could see of an exception: str, repr, and the full traceback
    with its chain of causes."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


def assert_no_secret(text: str, *secrets: str, where: str = "") -> None:
    for secret in secrets:
        assert secret not in text, f"password {secret!r} leaked in {where or 'output'}:\n{text}"


def admin(port: int, db: int = 0) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, db=db, username=USER, password=PASSWORD)


def dump_db(client: redis.Redis) -> str:
    """Every key and value of the client's db as text (all types)."""
    parts: list[str] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        parts.append(repr(key))
        if kind == "string":
            parts.append(repr(client.get(key)))
        elif kind == "hash":
            parts.append(repr(client.hgetall(key)))
        elif kind == "list":
            parts.append(repr(client.lrange(key, 0, -1)))
        elif kind == "set":
            parts.append(repr(client.smembers(key)))
        elif kind == "zset":
            parts.append(repr(client.zrange(key, 0, -1, withscores=True)))
        elif kind == "stream":
            parts.append(repr(client.xrange(key)))
        else:  # pragma: no cover - pyqueue writes no other types
            parts.append(f"<{kind}>")
    return "\n".join(parts)


async def run_cli(*args: str) -> tuple[int, str]:
    """Run ``python -m pyqueue.cli ARGS`` without blocking the loop (a worker may be
    running in it); returns (exit code, stdout + stderr)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYQUEUE_REDIS_URL", "REDIS_URL")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pyqueue.cli", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def job_finished(queue: AsyncQueue, job_id: str) -> Job | None:
    job = await queue.get_job(job_id)
    if job is not None and job.finished_on:
        return job
    return None


def echo(job: Job) -> Any:
    return {"echo": job.data}


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def acl_server() -> Iterator[RedisServer]:
    server = RedisServer(extra_args=ACL_ARGS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class TLSServer:
    def __init__(self, server: RedisServer, tls_port: int, ca: Path) -> None:
        self.server = server
        self.tls_port = tls_port
        self.ca = ca


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    directory = tmp_path_factory.mktemp("tls")
    try:
        certs = make_certs(directory)
    except CertError as exc:
        pytest.skip(f"cannot make test certificates: {exc}")
    tls_port = free_port()
    server = RedisServer(extra_args=[
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(certs.cert),
        "--tls-key-file", str(certs.key),
        "--tls-ca-cert-file", str(certs.ca),
        "--tls-auth-clients", "no",
    ])
    try:
        server.start()
    except RedisConnectionError as exc:
        server.stop()
        pytest.skip(f"this redis-server cannot serve TLS (not a TLS build?): "
                    f"{str(exc).splitlines()[-1]}")
    try:
        yield TLSServer(server, tls_port, certs.ca)
    finally:
        server.stop()


@pytest.fixture
async def acl_queue(acl_server: RedisServer, queue_name: str) -> AsyncIterator[AsyncQueue]:
    queue = AsyncQueue(queue_name, connection=url(acl_server.port))
    try:
        yield queue
    finally:
        await queue.obliterate(force=True)
        await queue.close()


# --------------------------------------------------------------------------- 1. ACL users


async def test_acl_user_and_db_number_end_to_end(acl_server: RedisServer,
                                                 queue_name: str) -> None:
    """Queue, AsyncQueue and Worker log in as an ACL user (AUTH with the user name:
    ``default`` is off) on db 3, through pyqueue's own connections."""
    target = url(acl_server.port, db=3)
    sync_queue = Queue(queue_name, connection=target)
    async_queue = AsyncQueue(queue_name, connection=target)
    worker = Worker(queue_name, echo, connection=target, autorun=False, shutdown_grace=2)
    try:
        assert sync_queue._fast is not None and async_queue._fast is not None
        first = sync_queue.add("sync", {"n": 1})
        second = await async_queue.add("async", {"n": 2})
        await worker.start()
        assert worker._fast is not None, "the worker must use its pipelined connection"
        for job, data in ((first, {"n": 1}), (second, {"n": 2})):
            done = await wait_for(lambda j=job: job_finished(async_queue, j.id), timeout=10,
                                  what=f"job {job.id} to finish")
            assert done.failed_reason is None
            assert done.return_value == {"echo": data}
        third = await async_queue.add("again", {"n": 3})
        assert await third.wait_until_finished(timeout=10) == {"echo": {"n": 3}}
    finally:
        await worker.close()
        sync_queue.close()
        await async_queue.close()

    db3, db0 = admin(acl_server.port, db=3), admin(acl_server.port, db=0)
    try:
        prefix = f"bull:{queue_name}:"
        assert db3.exists(f"{prefix}{first.id}", f"{prefix}{second.id}", f"{prefix}{third.id}")\
            == 3
        assert db3.zcard(f"{prefix}completed") == 3
        assert list(db0.scan_iter(match=f"{prefix}*")) == [], "keys leaked into db 0"
        db3.delete(*db3.scan_iter(match=f"{prefix}*"))
    finally:
        db3.close()
        db0.close()


async def test_clients_built_by_keyword_log_in_and_land_in_their_db(
        acl_server: RedisServer, queue_name: str) -> None:
    """A redis-py client made with keywords (not from a URL) carries settings a
    URL never sets (driver info, a read size, an unset credential provider):
    pyqueue still takes its user, password and db for its own connections; a
    client with a credential provider is used as it is (redis-py logs in)."""
    port = acl_server.port
    by_keyword = redis.asyncio.Redis(host="127.0.0.1", port=port, db=4, username=USER,
                                     password=PASSWORD)
    provider = redis.asyncio.Redis(
        host="127.0.0.1", port=port, db=4,
        credential_provider=redis.UsernamePasswordCredentialProvider(USER, PASSWORD))
    sync_by_keyword = redis.Redis(host="127.0.0.1", port=port, db=4, username=USER,
                                  password=PASSWORD)
    fast = AsyncQueue(queue_name, connection=by_keyword)
    via_redis_py = AsyncQueue(queue_name, connection=provider)
    sync_fast = Queue(queue_name, connection=sync_by_keyword)
    db4 = admin(port, db=4)
    try:
        assert fast._fast is not None and sync_fast._fast is not None
        assert via_redis_py._fast is None
        jobs = [await fast.add("a", {"n": 1}), await via_redis_py.add("b", {"n": 2}),
                sync_fast.add("c", {"n": 3})]
        prefix = f"bull:{queue_name}:"
        assert db4.exists(*(f"{prefix}{job.id}" for job in jobs)) == 3
        assert await fast.get_job_counts("waiting") == {"waiting": 3}
    finally:
        await fast.close()
        await via_redis_py.close()
        sync_fast.close()
        for client in (by_keyword, provider):
            await client.aclose()
        sync_by_keyword.close()
        db4.delete(*db4.scan_iter(match=f"bull:{queue_name}:*"))
        db4.close()


def test_default_user_is_really_off(acl_server: RedisServer) -> None:
    """The premise of the ACL test: without the user name nothing works."""
    client = redis.Redis(host="127.0.0.1", port=acl_server.port, password=PASSWORD,
                         retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            client.ping()
    finally:
        client.close()


# --------------------------------------------------------------------------- 2. wrong password


async def test_wrong_password_raises_a_typed_error_without_the_password(
        acl_server: RedisServer, queue_name: str) -> None:
    bad = url(acl_server.port, password=WRONG)
    errors: list[BaseException] = []

    sync_queue = Queue(queue_name, connection=bad)
    try:
        with pytest.raises(PyQueueError) as info:
            sync_queue.add("job", {"n": 1})
        errors.append(info.value)
        with pytest.raises(PyQueueError) as info:
            sync_queue.get_job_counts()
        errors.append(info.value)
    finally:
        sync_queue.close()

    async_queue = AsyncQueue(queue_name, connection=bad)
    try:
        with pytest.raises(PyQueueError) as info:
            await async_queue.add("job", {"n": 1})
        errors.append(info.value)
    finally:
        await async_queue.close()

    worker = Worker(queue_name, echo, connection=bad, autorun=False)
    try:
        with pytest.raises(PyQueueError) as info:
            await worker.start()
        errors.append(info.value)
    finally:
        await worker.close()

    for exc in errors:
        assert isinstance(exc, RedisConnectionError), repr(exc)
        assert_no_secret(exception_text(exc), WRONG, PASSWORD, where=type(exc).__name__)
    for obj in (sync_queue, async_queue, worker):
        assert_no_secret(repr(obj) + str(obj), WRONG, PASSWORD, where="repr")


async def test_autorun_worker_with_a_wrong_password_logs_no_password(
        acl_server: RedisServer, queue_name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pyqueue")
    seen: list[BaseException] = []
    worker = Worker(queue_name, echo, connection=url(acl_server.port, password=WRONG))
    worker.on("error", seen.append)
    try:
        await wait_for(lambda: seen, timeout=10, what="the worker's start to fail")
    finally:
        await worker.close()
    assert any(r.name.startswith("pyqueue") for r in caplog.records), "nothing was logged"
    for record in caplog.records:
        assert_no_secret(caplog.handler.format(record), WRONG, PASSWORD, where="a log record")
    for exc in seen:
        assert_no_secret(exception_text(exc), WRONG, PASSWORD, where="an error event")


async def test_worker_that_loses_its_login_logs_no_password(
        acl_server: RedisServer, queue_name: str, caplog: pytest.LogCaptureFixture) -> None:
    """A running worker whose password is changed under it keeps failing to
    reconnect (fetch, blocking wait, heartbeat, ...): none of its warnings or
    error events may show the password it holds."""
    caplog.set_level(logging.DEBUG, logger="pyqueue")
    user, password = f"u{uuid4().hex[:8]}", f"Pw-{uuid4().hex}"
    control = admin(acl_server.port)
    control.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"],
                        channels=["*"], commands=["+@all"])
    seen: list[BaseException] = []
    target = url(acl_server.port, user=user, password=password)
    worker = Worker(queue_name, echo, connection=target, autorun=False, drain_delay=0.2,
                    shutdown_grace=1)
    worker.on("error", seen.append)
    try:
        await worker.start()
        async with AsyncQueue(queue_name, connection=target) as queue:
            job = await queue.add("before", {"n": 1})
            assert await job.wait_until_finished(timeout=10) == {"echo": {"n": 1}}
            await queue.obliterate(force=True)
        control.acl_setuser(user, reset_passwords=True, passwords=[f"+{WRONG}"])
        control.execute_command("CLIENT", "KILL", "USER", user)
        await wait_for(lambda: any(r.levelno >= logging.WARNING and
                                   r.name.startswith("pyqueue") for r in caplog.records),
                       timeout=10, what="a warning about the failed reconnection")
        await wait_for(lambda: seen, timeout=10, what="an error event")
    finally:
        await worker.close()
        control.acl_deluser(user)
        control.close()
    for record in caplog.records:
        assert_no_secret(caplog.handler.format(record), password, PASSWORD,
                         where="a log record")
    for exc in seen:
        assert_no_secret(exception_text(exc), password, PASSWORD, where="an error event")


@pytest.mark.parametrize("bad_url", [
    f"redis://{USER}:{PASSWORD}@127.0.0.1:notaport/0",
    f"http://{USER}:{PASSWORD}@127.0.0.1:6379/0",
    f"redis://{USER}:{PASSWORD}@127.0.0.1:6379/0?socket_timeout=soon",
    f"redis://127.0.0.1:notaport/0?password={PASSWORD}",
])
def test_invalid_url_errors_mask_the_password(bad_url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Queue("q", connection=bad_url)
    assert_no_secret(exception_text(info.value), PASSWORD, where="ConfigurationError")


# --------------------------------------------------------------------------- 3. TLS


def tls_url(tls: TLSServer, host: str = "localhost", query: str = "",
            scheme: str = "rediss") -> str:
    return f"{scheme}://{host}:{tls.tls_port}/0{query}"


async def assert_tls_refused(target: str, queue_name: str) -> None:
    """Queue (sync hot path), AsyncQueue (async hot path) and Worker (redis-py at
    start) must all refuse ``target`` with a typed error about the certificate."""
    errors: list[BaseException] = []
    with Queue(queue_name, connection=target) as sync_queue:
        assert sync_queue._fast is not None
        with pytest.raises(PyQueueError) as info:
            sync_queue.add("job", {})
        errors.append(info.value)
    async with AsyncQueue(queue_name, connection=target) as async_queue:
        assert async_queue._fast is not None
        with pytest.raises(PyQueueError) as info:
            await async_queue.add("job", {})
        errors.append(info.value)
    worker = Worker(queue_name, echo, connection=target, autorun=False)
    try:
        with pytest.raises(PyQueueError) as info:
            await worker.start()
        errors.append(info.value)
    finally:
        await worker.close()
    for exc in errors:
        assert isinstance(exc, RedisConnectionError), repr(exc)
        text = exception_text(exc).lower()
        assert "certificate" in text or "hostname" in text, text


async def test_tls_control_unverified_connection_reaches_the_server(
        tls_server: TLSServer, queue_name: str) -> None:
    """Control: the TLS port works (so the refusals below are about verification)."""
    with Queue(queue_name, connection=tls_url(tls_server, query="?ssl_cert_reqs=none")) as q:
        job = q.add("job", {})
        assert q.get_job_state(job.id) == "waiting"
        q.obliterate(force=True)


async def test_rediss_verifies_the_certificate_by_default(
        tls_server: TLSServer, queue_name: str) -> None:
    await assert_tls_refused(tls_url(tls_server), queue_name)


async def test_rediss_checks_the_host_name(tls_server: TLSServer, queue_name: str) -> None:
    """The CA is trusted, but the certificate names localhost, not 127.0.0.1."""
    await assert_tls_refused(
        tls_url(tls_server, host="127.0.0.1", query=f"?ssl_ca_certs={tls_server.ca}"),
        queue_name)


async def test_rediss_with_a_private_ca_works_end_to_end(
        tls_server: TLSServer, queue_name: str) -> None:
    target = tls_url(tls_server, query=f"?ssl_ca_certs={tls_server.ca}")
    sync_queue = Queue(queue_name, connection=target)
    async_queue = AsyncQueue(queue_name, connection=target)
    worker = Worker(queue_name, echo, connection=target, autorun=False, shutdown_grace=2)
    try:
        assert sync_queue._fast is not None and async_queue._fast is not None
        first = sync_queue.add("sync", {"n": 1})
        second = await async_queue.add("async", {"n": 2})
        await worker.start()
        assert worker._fast is not None, "the worker must use its pipelined connection"
        assert await second.wait_until_finished(timeout=10) == {"echo": {"n": 2}}
        done = await wait_for(lambda: job_finished(async_queue, first.id), timeout=10)
        assert done.return_value == {"echo": {"n": 1}}
        await async_queue.obliterate(force=True)
    finally:
        await worker.close()
        sync_queue.close()
        await async_queue.close()


def test_plain_redis_url_cannot_talk_to_the_tls_port(tls_server: TLSServer,
                                                     queue_name: str) -> None:
    """Sanity for the end-to-end test: on the TLS port only TLS works, so a job that
    went through there went through TLS."""
    with Queue(queue_name, connection=tls_url(tls_server, scheme="redis")) as q, \
            pytest.raises(RedisConnectionError):
        q.add("job", {})


# --------------------------------------------------------------------------- 4. no password at rest


async def test_password_is_not_stored_in_redis_nor_shown_by_the_cli(
        acl_server: RedisServer, queue_name: str, acl_queue: AsyncQueue) -> None:
    target = url(acl_server.port)

    async def processor(job: Job) -> Any:
        await job.update_progress(50)
        await job.log("working")
        if job.name == "bad":
            raise RuntimeError("processor failed")
        return {"ok": job.data}

    worker = Worker(queue_name, processor, connection=target, autorun=False,
                    worker_name="w1", shutdown_grace=2)
    await worker.start()
    try:
        good = await acl_queue.add("good", {"n": 1})
        bad = await acl_queue.add("bad", {"n": 2}, attempts=2)
        assert await good.wait_until_finished(timeout=10) == {"ok": {"n": 1}}
        await wait_for(lambda: job_finished(acl_queue, bad.id), timeout=10)
        await wait_for(lambda: admin_hlen(acl_server.port, f"bull:{queue_name}:pq:workerinfo"),
                       timeout=10, what="a heartbeat")

        client = admin(acl_server.port)
        try:
            stored = dump_db(client)
            names = client.execute_command("CLIENT", "LIST")
        finally:
            client.close()
        assert f"bull:{queue_name}:events" in stored and "processor failed" in stored
        assert_no_secret(stored, PASSWORD, where="Redis data")
        assert_no_secret(repr(names), PASSWORD, where="CLIENT LIST")

        commands = [  # (arguments, a text the output must show, so it did work)
            (("info",), queue_name),
            (("info", "--json"), queue_name),
            (("info", queue_name), queue_name),
            (("info", "--prefix", "nothing-here"), "no queues"),  # prints the (masked) URL
            (("jobs", queue_name, "failed", "--json"), "processor failed"),
            (("jobs", queue_name, "completed"), "good"),
            # The first heartbeat may predate the first fetch: healthy or not (exit 1),
            # the worker is listed.
            (("health", queue_name, "--json"), '"worker_id"'),
        ]
        for args, expected in commands:
            rc, text = await run_cli(*args, "--redis", target)
            assert rc in ((0, 1) if args[0] == "health" else (0,)), (args, text)
            assert expected in text, (args, text)
            assert_no_secret(text, PASSWORD, where=f"pyqueue {' '.join(args)}")
    finally:
        await worker.close()


async def test_worker_json_logs_and_metrics_line_mask_the_password(
        acl_server: RedisServer, queue_name: str, acl_queue: AsyncQueue) -> None:
    """``pyqueue worker --log-format json``: a processor that logs the connection URL,
    and the worker's own lines, show it masked."""
    target = url(acl_server.port)
    await acl_queue.add("line", {"url": target})
    rc, text = await run_cli("worker", "tests._log_jobs:log_line", "--queue", queue_name,
                             "--burst", "--log-format", "json", "--redis", target)
    assert rc == 0, text
    assert f"via redis://{USER}:***@127.0.0.1" in text
    assert_no_secret(text, PASSWORD, where="pyqueue worker --log-format json")


def test_metrics_exporter_masks_the_password(acl_server: RedisServer) -> None:
    """``pyqueue metrics`` prints where it serves and which Redis it reads, masked."""
    proc = subprocess.Popen([sys.executable, "-m", "pyqueue.cli", "metrics", "--port", "0",
                             "--host", "127.0.0.1", "--redis", url(acl_server.port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "serving http://127.0.0.1:" in line and f"{USER}:***@" in line, line + err
    assert_no_secret(line + out + err, PASSWORD, where="pyqueue metrics")


def admin_hlen(port: int, key: str) -> int:
    client = admin(port)
    try:
        return int(client.hlen(key))
    finally:
        client.close()


@pytest.mark.parametrize("args", [("info",), ("info", "somequeue"), ("jobs", "q", "failed"),
                                  ("health", "q"), ("retry", "q")])
async def test_cli_with_a_wrong_password_does_not_print_it(acl_server: RedisServer,
                                                           args: tuple[str, ...]) -> None:
    rc, text = await run_cli(*args, "--redis", url(acl_server.port, password=WRONG))
    assert rc != 0, text
    assert text.strip(), "no error printed"
    assert_no_secret(text, WRONG, PASSWORD, where=f"pyqueue {args[0]}")


@pytest.mark.parametrize("args", [("info",), ("health", "q")])
async def test_cli_with_a_wrong_password_prints_a_clean_error(acl_server: RedisServer,
                                                              args: tuple[str, ...]) -> None:
    rc, text = await run_cli(*args, "--redis", url(acl_server.port, password=WRONG))
    assert rc == 1, text
    assert "Traceback" not in text, text
    assert text.startswith(f"pyqueue {args[0]}: "), text


async def test_process_mode_children_do_not_get_the_password_on_their_command_line(
        acl_server: RedisServer, queue_name: str, acl_queue: AsyncQueue) -> None:
    worker = Worker(queue_name, _proc_jobs.echo, connection=url(acl_server.port),
                    execution="process", autorun=False, shutdown_grace=2)
    await worker.start()
    try:
        job = await acl_queue.add("job", {"n": 1})
        result = await job.wait_until_finished(timeout=15)
        assert result["pid"] != os.getpid()
        cmdline = Path(f"/proc/{result['pid']}/cmdline").read_bytes()  # idle child, alive
    finally:
        await worker.close()
    assert b"_procchild" in cmdline
    assert_no_secret(cmdline.replace(b"\0", b" ").decode(errors="replace"), PASSWORD,
                     where="a process-mode child's command line")


# --------------------------------------------------------------------------- 5. JSON only


def returns_a_set(job: Job) -> Any:
    return {1, 2, 3}


class Opaque:
    pass


def returns_an_object(job: Job) -> Any:
    return Opaque()


async def test_job_fields_are_json(redis_url: str, queue_name: str,
                                   redis_client: redis.Redis) -> None:
    async with AsyncQueue(queue_name, connection=redis_url) as queue:
        worker = Worker(queue_name, echo, connection=redis_url, autorun=False, shutdown_grace=2)
        await worker.start()
        try:
            job = await queue.add("job", {"text": "héllo", "n": [1, 2.5, None, True]},
                                  attempts=3, job_id="custom-1")
            await job.wait_until_finished(timeout=10)
        finally:
            await worker.close()
        fields = {k.decode(): v for k, v in
                  redis_client.hgetall(f"bull:{queue_name}:custom-1").items()}
        assert json.loads(fields["data"]) == {"text": "héllo", "n": [1, 2.5, None, True]}
        assert json.loads(fields["opts"])["attempts"] == 3
        assert json.loads(fields["returnvalue"]) == {"echo": {"text": "héllo",
                                                              "n": [1, 2.5, None, True]}}
        for value in fields.values():
            assert not value.startswith(b"\x80"), f"pickle protocol header in {fields}"
        await queue.obliterate(force=True)


@pytest.mark.parametrize("processor", [returns_a_set, returns_an_object])
async def test_a_non_json_return_value_fails_the_attempt(
        redis_url: str, queue_name: str, redis_client: redis.Redis, processor: Any) -> None:
    async with AsyncQueue(queue_name, connection=redis_url) as queue:
        worker = Worker(queue_name, processor, connection=redis_url, autorun=False,
                        shutdown_grace=2)
        await worker.start()
        try:
            job = await queue.add("job", {"n": 1})
            done = await wait_for(lambda: job_finished(queue, job.id), timeout=10)
        finally:
            await worker.close()
        assert await queue.get_job_state(job.id) == "failed"
        assert done.failed_reason is not None
        assert "json" in done.failed_reason.lower(), done.failed_reason
        fields = redis_client.hgetall(f"bull:{queue_name}:{job.id}")
        assert b"returnvalue" not in fields or json.loads(fields[b"returnvalue"]) is None
        assert not any(v.startswith(b"\x80") for v in fields.values())
        await queue.obliterate(force=True)


@pytest.mark.parametrize("data", [{1, 2}, Opaque(), b"bytes", {"k": float("nan")},
                                  {("tuple", "key"): 1}])
def test_non_json_job_data_is_refused_before_anything_is_written(
        redis_url: str, queue_name: str, redis_client: redis.Redis, data: Any) -> None:
    with Queue(queue_name, connection=redis_url) as queue, \
            pytest.raises(InvalidJobDataError):
        queue.add("job", data)
    assert list(redis_client.scan_iter(match=f"bull:{queue_name}:*")) == []


PICKLE_LIKE = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "jsonpickle", "marshal",
               "shelve"}


def test_no_module_of_pyqueue_uses_pickle() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    offenders = []
    for path in files:
        source = path.read_text()
        tree = ast.parse(source, filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id == "__import__" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                names = [str(node.args[0].value)]
            for name in names:
                if name.split(".")[0] in PICKLE_LIKE or name == "multiprocessing.reduction":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
        for needle in ("pickle.loads", "pickle.dumps", "pickle.load(",
                       "import_module('pickle')", 'import_module("pickle")'):
            if needle in source:
                offenders.append(f"{path.relative_to(REPO)} contains {needle!r}")
    assert offenders == []
