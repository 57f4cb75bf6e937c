"""Redis error replies become pyqueue's typed errors, and none can wedge a caller.

Issue 18 item 1: an error reply pyqueue did not map (WRONGTYPE, BUSY, ...)
came back from ``translate`` as the same object, was raised ``from`` itself,
and ``needs_reconnect`` walked that one-link cycle forever.
"""

from __future__ import annotations

import socket
import uuid

import pytest
import redis
import redis.exceptions as rexc
from redis._parsers import BaseParser

from pyqueue import (
    AsyncQueue,
    PyQueueError,
    Queue,
    RedisBusyError,
    RedisConnectionError,
    RedisDataError,
    RedisError,
    RedisReplyError,
    RedisStateError,
    _ops_add,
)
from pyqueue._plan import error_code, needs_reconnect, translate


def reply(text: str) -> Exception:
    """The exception redis-py (and pyqueue's connections) make of an error reply."""
    error: Exception = BaseParser.parse_error(text)
    return error


@pytest.mark.parametrize(("text", "kind", "code"), [
    ("BUSY Redis is busy running a script. You can only call SCRIPT KILL", RedisBusyError,
     "BUSY"),
    ("LOADING Redis is loading the dataset in memory", RedisBusyError, "LOADING"),
    ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
     RedisBusyError, "MASTERDOWN"),
    ("TRYAGAIN Multiple keys request during rehashing of slot", RedisBusyError, "TRYAGAIN"),
    ("CLUSTERDOWN The cluster is down", RedisBusyError, "CLUSTERDOWN"),
    ("WRONGTYPE Operation against a key holding the wrong kind of value", RedisDataError,
     "WRONGTYPE"),
    ("WRONGTYPE Operation against a key holding the wrong kind of value script: abc, on "
     "@user_script:12.", RedisDataError, "WRONGTYPE"),
    ("ERR Error running script (call to f_abc): @user_script:12: WRONGTYPE Operation "
     "against a key holding the wrong kind of value", RedisDataError, "WRONGTYPE"),
    ("OOM command not allowed when used memory > 'maxmemory'.", RedisStateError, "OOM"),
    ("READONLY You can't write against a read only replica.", RedisStateError, "READONLY"),
    ("NOPERM this user has no permissions to run the 'eval' command", RedisStateError,
     "NOPERM"),
    ("MISCONF Redis is configured to save RDB snapshots, but it's unable to persist",
     RedisStateError, "MISCONF"),
    ("UNBLOCKED force unblock from blocking operation", RedisStateError, "UNBLOCKED"),
    ("ERR unknown command 'FOO'", RedisReplyError, "ERR"),
    ("NOSCRIPT No matching script", RedisReplyError, "NOSCRIPT"),
    ("SOMETHINGNEW the future", RedisReplyError, "SOMETHINGNEW"),
])
def test_each_error_reply_maps_to_a_new_typed_error(text: str, kind: type[RedisError],
                                                    code: str) -> None:
    original = reply(text)
    error = translate(original)
    assert type(error) is kind
    assert error is not original
    assert error.__cause__ is original
    assert error.code == code
    assert code in str(error)  # Redis's code stays in the message, even when redis-py cut it
    assert not isinstance(error, rexc.RedisError)


@pytest.mark.parametrize("original", [
    rexc.ConnectionError("Connection refused"), rexc.TimeoutError("Timeout reading"),
    ConnectionResetError("reset"), TimeoutError("timed out"),
    rexc.AuthenticationError("invalid password"),
])
def test_connection_problems_are_transient(original: BaseException) -> None:
    error = translate(original)
    assert isinstance(error, RedisConnectionError) and error is not original
    assert error.code is None


def test_anything_else_is_still_a_new_pyqueue_error() -> None:
    original = KeyError("x")
    error = translate(original)
    assert type(error) is RedisError and error is not original
    assert isinstance(translate(RedisDataError("x")), PyQueueError)


def test_transient_errors_are_connection_errors_and_busy_only_for_codes() -> None:
    assert issubclass(RedisBusyError, RedisConnectionError)
    assert issubclass(RedisConnectionError, ConnectionError)
    for kind in (RedisBusyError, RedisStateError, RedisDataError, RedisReplyError,
                 RedisConnectionError):
        assert issubclass(kind, RedisError) and issubclass(kind, PyQueueError)


def test_needs_reconnect_terminates_on_a_cyclic_chain() -> None:
    # The chain the old runner built: ``raise translate(exc) from exc`` with
    # translate returning exc itself.
    wedged = reply("WRONGTYPE Operation against a key holding the wrong kind of value")
    wedged.__cause__ = wedged
    assert needs_reconnect(wedged) is False
    a, b = reply("ERR a"), reply("ERR b")
    a.__cause__, b.__cause__ = b, a
    assert needs_reconnect(a) is False


def test_needs_reconnect_sees_a_demoted_primary_through_the_chain() -> None:
    assert needs_reconnect(translate(reply("READONLY You can't write against a replica")))
    assert needs_reconnect(translate(reply("UNBLOCKED force unblock")))
    outer = RuntimeError("wrapped")
    outer.__cause__ = reply("READONLY You can't write against a replica")
    assert needs_reconnect(outer)
    assert not needs_reconnect(translate(reply("OOM no memory")))


def test_error_code_is_none_for_what_is_not_an_error_reply() -> None:
    assert error_code(rexc.ConnectionError("lost")) is None
    assert error_code(ValueError("x")) is None
    assert error_code(reply("LOADING loading")) == "LOADING"


# --- against the real server ----------------------------------------------------


def test_a_wrongtype_key_under_a_queue_raises_the_typed_error(
        redis_url: str, redis_client: redis.Redis, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as queue:
        queue.add("first")  # the queue exists and is synced
        redis_client.delete(f"bull:{queue_name}:wait")
        redis_client.set(f"bull:{queue_name}:wait", "not a list")
        with pytest.raises(RedisDataError, match="WRONGTYPE") as caught:
            queue.get_job_counts()
        assert not needs_reconnect(caught.value)
        with pytest.raises(RedisDataError, match="WRONGTYPE"):
            queue.add("second")


async def test_a_wrongtype_key_under_an_async_queue_raises_the_typed_error(
        redis_url: str, redis_client: redis.Redis, queue_name: str) -> None:
    async with AsyncQueue(queue_name, connection=redis_url) as queue:
        await queue.add("first")
        redis_client.delete(f"bull:{queue_name}:wait")
        redis_client.set(f"bull:{queue_name}:wait", "not a list")
        with pytest.raises(RedisDataError, match="WRONGTYPE"):
            await queue.get_job_counts("waiting")
        with pytest.raises(RedisDataError, match="WRONGTYPE"):
            await queue.add("second")


def test_a_wrongtype_key_with_redis_py_clients_too(
        redis_url: str, redis_client: redis.Redis, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url, pipelined=False) as queue:
        queue.add("first")
        redis_client.delete(f"bull:{queue_name}:wait")
        redis_client.set(f"bull:{queue_name}:wait", "not a list")
        with pytest.raises(RedisDataError):
            queue.get_job_counts()
        with pytest.raises(RedisDataError):
            queue.add("second")


@pytest.mark.parametrize("pipelined", [True, False])
def test_add_bulk_says_which_jobs_were_acknowledged(
        redis_url: str, redis_client: redis.Redis, queue_name: str,
        monkeypatch: pytest.MonkeyPatch, pipelined: bool) -> None:
    monkeypatch.setattr(_ops_add, "ADD_CHUNK", 1)  # one script call per job
    # An ACL user that may touch every key of the queue except job-b's: the
    # second chunk fails inside Redis, the first and third are applied.
    user = f"bulk-{uuid.uuid4().hex[:8]}"
    base = f"bull:{queue_name}:"
    redis_client.acl_setuser(user, enabled=True, passwords=["+secret"], commands=["+@all"],
                             keys=[f"{base}job-a*", f"{base}job-c*", f"{base}[^j]*"])
    host, port = redis_client.connection_pool.connection_kwargs["host"], \
        redis_client.connection_pool.connection_kwargs["port"]
    limited = f"redis://{user}:secret@{host}:{port}/0"
    jobs = [{"name": "a", "opts": {"job_id": "job-a"}},
            {"name": "b", "opts": {"job_id": "job-b"}},
            {"name": "c", "opts": {"job_id": "job-c"}}]
    try:
        with Queue(queue_name, connection=limited, pipelined=pipelined) as queue:
            with pytest.raises(RedisError) as caught:
                queue.add_bulk(jobs)
            error = caught.value
            assert error.acknowledged_ids == ["job-a", "job-c"]
            assert "may or may not have been applied" in str(error)
    finally:
        redis_client.acl_deluser(user)
    with Queue(queue_name, connection=redis_url, pipelined=pipelined) as queue:
        assert queue.get_job("job-a") is not None and queue.get_job("job-c") is not None
        assert queue.get_job("job-b") is None
        # Retrying with the same ids adds nothing twice.
        assert [job.id for job in queue.add_bulk(jobs)] == ["job-a", "job-b", "job-c"]
        assert queue.get_job_counts("waiting")["waiting"] == 3


@pytest.mark.parametrize("pipelined", [True, False])
def test_add_bulk_with_redis_unreachable_acknowledges_nothing(pipelined: bool) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Queue("unreachable", connection=f"redis://127.0.0.1:{port}/0",
               pipelined=pipelined) as queue, pytest.raises(RedisConnectionError) as caught:
        queue.add_bulk([{"name": "a"}, {"name": "b"}])
    assert caught.value.acknowledged_ids == []
