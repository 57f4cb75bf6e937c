"""The plan runner: the pure decision (``settle``), the transports and the drivers.

``settle`` is tested without Redis; the drivers run against the session's real
redis-server through every transport (redis-py sync and asyncio, pyqueue's
``SyncConnection`` and ``PipelinedConnection``), including a script cache
flushed under them (NOSCRIPT, answered by EVAL).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.exceptions as rexc

from pyqueue import RedisConnectionError, RedisDataError, RedisError, RedisReplyError
from pyqueue._plan import Batch, Command, Fail, Plan, Redo, Script, cmd, settle
from pyqueue._resp import Options, PipelinedConnection, SyncConnection, options_from
from pyqueue._runner import async_transport, run_async, run_sync, start_async, sync_transport
from pyqueue.errors import InvalidJobDataError

SOURCE = "return ARGV[1]"
LIBRARY = ("#!lua name=pyqueue_test_echo\n"
           "redis.register_function('pyqueue_test_echo', function(KEYS, ARGV) return ARGV[1] end)")
ECHO = Script("echo", SOURCE, hashlib.sha1(SOURCE.encode()).hexdigest(), "pyqueue_test_echo",
              LIBRARY)


def script_call(value: str, *, fcall: bool = False) -> Command:
    return Command((0, value), script=ECHO, fcall=fcall)


# --- settle: pure ---------------------------------------------------------------


def test_settle_hands_on_the_same_list_when_all_is_well() -> None:
    replies = ["OK", 3]
    assert settle([cmd("SET", "a", 1), cmd("INCR", "b")], replies) is replies


def test_settle_asks_for_a_redo_of_each_noscript_reply_of_a_script_call() -> None:
    batch = [script_call("a"), cmd("GET", "x"), script_call("b")]
    replies = [rexc.NoScriptError("No matching script"), None,
               rexc.NoScriptError("No matching script")]
    outcome = settle(batch, replies)
    assert outcome == Redo((0, 2))
    assert isinstance(outcome, Redo)
    assert [c.words()[0] for c in outcome.commands(batch)] == ["EVAL", "EVAL"]


def test_settle_redoes_before_failing_and_fails_noscript_after_a_redo() -> None:
    batch = [script_call("a"), cmd("GET", "x")]
    replies = [rexc.NoScriptError("No matching script"), rexc.ResponseError("WRONGTYPE x")]
    assert settle(batch, replies) == Redo((0,))
    again = settle(batch, [rexc.NoScriptError("No matching script"), 1], redone=True)
    assert isinstance(again, Fail) and isinstance(again.error, RedisReplyError)


def test_settle_fails_with_the_first_error_translated() -> None:
    batch = [cmd("LLEN", "a"), cmd("LLEN", "b"), cmd("LLEN", "c")]
    first = rexc.ResponseError("WRONGTYPE Operation against a key holding the wrong kind")
    outcome = settle(batch, [1, first, rexc.ResponseError("ERR other")])
    assert isinstance(outcome, Fail)
    assert isinstance(outcome.error, RedisDataError)
    assert outcome.error.__cause__ is first


def test_settle_hands_errors_on_as_values_when_the_command_asks() -> None:
    tolerant = cmd("LLEN", "b")
    tolerant.errors_as_values = True
    replies = [1, rexc.ResponseError("WRONGTYPE x"), rexc.ConnectionError("lost")]
    batch = [cmd("LLEN", "a"), tolerant, Command(("LLEN", "c"), errors_as_values=True)]
    outcome = settle(batch, replies)
    assert isinstance(outcome, list) and outcome is not replies
    assert outcome[0] == 1
    assert isinstance(outcome[1], RedisDataError)
    assert isinstance(outcome[2], RedisConnectionError)
    assert isinstance(replies[1], rexc.ResponseError)  # the input is left alone


# --- the drivers, with a transport that answers from a script -------------------


class Scripted:
    """An async transport answering each batch from a list (tests the driver,
    not a connection): a list of replies, or an exception for "nothing known"."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.batches: list[list[tuple[Any, ...]]] = []

    def submit(self, batch: Batch, immediate: bool = False) -> asyncio.Future[Any]:
        self.batches.append([c.words() for c in batch])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer[0] if len(batch) == 1 else answer)
        return future


def two_steps() -> Plan[list[Any]]:
    first = yield [script_call("a")]
    second = yield [cmd("GET", "k"), cmd("GET", "j")]
    return [*first, *second]


@pytest.mark.parametrize("runner", ["start_async", "run_async"])
async def test_async_drivers_redo_noscript_and_advance(runner: str) -> None:
    transport = Scripted([[rexc.NoScriptError("No matching script")], ["a"], ["1", "2"]])
    if runner == "start_async":
        result = await start_async(transport, two_steps())
    else:
        result = await run_async(transport, two_steps())
    assert result == ["a", "1", "2"]
    assert [b[0][0] for b in transport.batches] == ["EVALSHA", "EVAL", "GET"]


@pytest.mark.parametrize("runner", ["start_async", "run_async"])
async def test_async_drivers_throw_errors_into_the_plan(runner: str) -> None:
    seen: list[BaseException] = []

    def plan() -> Plan[str]:
        try:
            yield [cmd("GET", "k")]
        except RedisConnectionError as exc:
            seen.append(exc)
            raise
        return "unreachable"

    transport = Scripted([rexc.ConnectionError("lost")])
    with pytest.raises(RedisConnectionError) as caught:
        if runner == "start_async":
            await start_async(transport, plan())
        else:
            await run_async(transport, plan())
    assert seen == [caught.value]
    assert isinstance(caught.value.__cause__, rexc.ConnectionError)


async def test_start_async_submits_before_returning_and_needs_no_task() -> None:
    transport = Scripted([["v"]])
    tasks_before = len(asyncio.all_tasks())
    future = start_async(transport, two_steps_one())
    assert transport.batches == [[("GET", "k")]]  # written before start_async returned
    assert len(asyncio.all_tasks()) == tasks_before
    assert await future == "v"


def two_steps_one() -> Plan[str]:
    (value,) = yield [cmd("GET", "k")]
    return str(value)


async def test_start_async_cancelled_abandons_the_plan() -> None:
    closed: list[bool] = []

    def plan() -> Plan[None]:
        try:
            yield [cmd("GET", "k")]
            yield [cmd("GET", "j")]
        finally:
            closed.append(True)

    loop = asyncio.get_running_loop()
    pending: asyncio.Future[Any] = loop.create_future()

    class Slow(Scripted):
        def submit(self, batch: Batch, immediate: bool = False) -> asyncio.Future[Any]:
            self.batches.append([c.words() for c in batch])
            return pending

    transport = Slow([])
    future = start_async(transport, plan())
    future.cancel()
    pending.set_result(None)
    deadline = loop.time() + 5
    while not closed and loop.time() < deadline:  # the done-callback runs on a later turn
        await asyncio.sleep(0)
    assert closed == [True]
    assert len(transport.batches) == 1


# --- against the real server, every transport -------------------------------------


def plan_with_script(key: str) -> Plan[list[Any]]:
    replies = yield [cmd("SET", key, "v"), script_call("x"), cmd("GET", key)]
    return replies


@pytest.fixture
def sync_clients(redis_url: str) -> Iterator[list[Any]]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    options = options_from(client)
    assert options is not None
    fast = SyncConnection(options)
    yield [client, fast]
    fast.close()
    client.close()


@pytest.fixture
async def async_clients(redis_url: str) -> AsyncIterator[list[Any]]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    options = options_from(client)
    assert options is not None
    fast = PipelinedConnection(options)
    yield [client, fast]
    await fast.aclose()
    await client.aclose()


def test_run_sync_every_transport_reloads_a_flushed_script(
        sync_clients: list[Any], redis_client: redis.Redis, queue_name: str) -> None:
    for client in sync_clients:
        redis_client.script_flush()
        key = f"{queue_name}:{type(client).__name__}"
        assert run_sync(client, plan_with_script(key))[1:] == ["x", "v"]
        redis_client.script_flush()
        assert run_sync(sync_transport(client), plan_with_script(key))[1:] == ["x", "v"]


def test_run_sync_every_transport_raises_typed_errors(
        sync_clients: list[Any], redis_client: redis.Redis, queue_name: str) -> None:
    redis_client.set(f"{queue_name}:s", "text")
    for client in sync_clients:
        with pytest.raises(RedisDataError):
            run_sync(client, single_llen(f"{queue_name}:s"))
        with pytest.raises(RedisReplyError, match="unknown command"):
            run_sync(client, single_plan(cmd("NOSUCHCOMMAND")))


def single_llen(key: str) -> Plan[int]:
    (n,) = yield [cmd("LLEN", key)]
    return int(n)


def single_plan(command: Command) -> Plan[Any]:
    (reply,) = yield [command]
    return reply


async def test_async_runners_every_transport(
        async_clients: list[Any], redis_client: redis.Redis, queue_name: str) -> None:
    redis_client.set(f"{queue_name}:s", "text")
    for client in async_clients:
        for drive in (run_async, start_async):
            redis_client.script_flush()
            key = f"{queue_name}:{type(client).__name__}"
            replies = await drive(client, plan_with_script(key))
            assert replies[1:] == ["x", "v"]
            assert await drive(async_transport(client), single_plan(script_call("y"))) == "y"
            with pytest.raises(RedisDataError):
                await drive(client, single_llen(f"{queue_name}:s"))
            with pytest.raises(RedisReplyError, match="unknown command"):
                await drive(client, single_plan(cmd("NOSUCHCOMMAND")))


async def test_start_async_many_plans_share_the_pipelined_connection(
        async_clients: list[Any], queue_name: str) -> None:
    fast = async_clients[1]
    await run_async(fast, single_plan(cmd("PING")))  # connected: no task from here on
    futures = [start_async(fast, single_plan(cmd("INCR", f"{queue_name}:n")))
               for _ in range(50)]
    assert sorted(await asyncio.gather(*futures)) == list(range(1, 51))


async def test_start_async_connects_a_new_pipelined_connection(redis_url: str,
                                                               queue_name: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    options = options_from(client)
    assert options is not None
    fast = PipelinedConnection(options)
    try:
        key = f"{queue_name}:fresh"
        assert (await start_async(fast, plan_with_script(key)))[1:] == ["x", "v"]
        fresh = PipelinedConnection(options)
        try:
            assert await start_async(fresh, single_plan(cmd("GET", key))) == "v"
        finally:
            await fresh.aclose()
    finally:
        await fast.aclose()
        await client.aclose()


@pytest.mark.parametrize("immediate", [False, True], ids=["batched", "immediate"])
async def test_pipelined_batch_goes_out_in_one_write_and_redoes_noscript(
        async_clients: list[Any], redis_client: redis.Redis, queue_name: str,
        immediate: bool) -> None:
    fast = async_clients[1]
    await run_async(fast, single_plan(cmd("PING")))  # connected and idle
    protocol = fast._protocol
    assert protocol is not None and protocol.transport is not None
    transport = protocol.transport
    writes: list[bytes] = []
    write = transport.write

    def counted(data: bytes) -> None:  # the real write, counted
        writes.append(bytes(data))
        write(data)

    transport.write = counted  # type: ignore[method-assign]
    redis_client.script_flush()
    key = f"{queue_name}:one-write"
    replies = await start_async(fast, plan_with_script(key), immediate=immediate)
    assert replies == ["OK", "x", "v"]
    # The batch (SET, EVALSHA, GET) in one write, then the EVAL of the redo.
    assert len(writes) == 2, writes
    assert all(word in writes[0] for word in (b"SET", b"EVALSHA", b"GET"))
    assert b"EVAL\r\n" in writes[1]


async def test_send_batch_needs_a_connection_and_refuses_a_bad_batch_whole(
        async_clients: list[Any], redis_client: redis.Redis, queue_name: str) -> None:
    fast = async_clients[1]
    key = f"{queue_name}:batch"
    assert fast.send_batch([cmd("PING")]) is None  # not connected yet
    await run_async(fast, single_plan(cmd("PING")))
    with pytest.raises(InvalidJobDataError):
        fast.send_batch([cmd("SET", key, "a"), cmd("SET", key, None)])
    futures = fast.send_batch([cmd("INCR", f"{key}:n"), cmd("INCR", f"{key}:n"),
                               cmd("GET", f"{key}:n")])
    assert futures is not None
    assert [await future for future in futures] == [1, 2, "2"]
    assert redis_client.get(key) is None  # nothing of the refused batch was sent


def catching() -> Plan[BaseException | None]:
    try:
        yield [cmd("PING"), cmd("PING")]
    except RedisError as exc:  # the plan is told, as add_bulk is
        return exc
    return None


def unreachable_options() -> Options:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return Options(port=port, connect_timeout=2.0)


def test_run_sync_throws_a_connection_failure_into_the_plan() -> None:
    fast = SyncConnection(unreachable_options())
    assert isinstance(run_sync(fast, catching()), RedisConnectionError)


@pytest.mark.parametrize("runner", ["start_async", "run_async"])
async def test_async_drivers_throw_a_connection_failure_into_the_plan(runner: str) -> None:
    fast = PipelinedConnection(unreachable_options())
    drive = start_async if runner == "start_async" else run_async
    try:
        assert isinstance(await drive(fast, catching()), RedisConnectionError)
    finally:
        await fast.aclose()


async def test_drive_async_calls_back_from_the_last_reply_without_a_future() -> None:
    from pyqueue._runner import drive_async

    got: list[tuple[Any, BaseException | None]] = []
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[Any] = loop.create_future()

    class Held(Scripted):
        def submit(self, batch: Batch, immediate: bool = False) -> asyncio.Future[Any]:
            self.batches.append([c.words() for c in batch])
            return reply

    transport = Held([])
    drive_async(transport, two_steps_one(), lambda v, e: got.append((v, e)), immediate=True)
    assert transport.batches == [[("GET", "k")]]
    reply.set_result("v")
    # Future callbacks run one loop turn after set_result; on_done is called in
    # that same callback (start_async would need one more turn for its future).
    await asyncio.sleep(0)
    assert got == [("v", None)]


async def test_drive_async_reports_an_error_reply_translated() -> None:
    from pyqueue._runner import drive_async

    done: asyncio.Future[tuple[Any, BaseException | None]] = \
        asyncio.get_running_loop().create_future()
    transport = Scripted([[rexc.ResponseError("WRONGTYPE wrong kind of value")]])
    drive_async(transport, two_steps_one(), lambda v, e: done.set_result((v, e)))
    value, error = await done
    assert value is None and isinstance(error, RedisDataError)
