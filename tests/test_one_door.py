"""One door to Redis: key names only in ``_keys``, script names only in
``_scripts``, and no raw redis-py command calls in the worker or the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyqueue import _scripts as S
from pyqueue._keys import QUEUE_MARKERS, QueueKeys

PACKAGE = Path(__file__).resolve().parent.parent / "pyqueue"
LUA = Path(__file__).resolve().parent.parent / "lua"
SOURCES = sorted(PACKAGE.rglob("*.py"))
SCRIPT_NAMES = sorted(p.stem for p in LUA.glob("*.lua"))

#: redis-py command methods (names that are not also common Python methods;
#: ``(...).exists()`` is a ``Path``'s).
RAW_CALL = re.compile(
    r"(?<!\))\.(zadd|zrem|zrange|zrevrange|zscore|zcard|zcount|zpopmin|hset|hsetnx|hget|hgetall|"
    r"hmget|hdel|hexists|hincrby|smembers|sadd|srem|sismember|lpush|rpush|lrange|llen|lrem|"
    r"incr|decr|expire|pexpire|exists|delete|unlink|scan|scan_iter|xadd|xrange|xrevrange|"
    r"xread|eval|evalsha|script_load|config_get|execute_command|pipeline)\("
)
RAW_SCOPE = [p for p in SOURCES
             if "worker" in p.parts or p.name in ("cli.py", "_cli_admin.py")]


def _code(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_scanned_sources_are_there() -> None:
    assert len(SOURCES) > 30 and len(SCRIPT_NAMES) > 15 and len(RAW_SCOPE) > 10


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_script_names_only_in_scripts(path: Path) -> None:
    if path.name == "_scripts.py":
        return
    code = _code(path)
    assert not re.search(r"\bS\.(_?call)\(|_scripts\.(_?call)\(", code)
    for name in SCRIPT_NAMES:
        # camelCase names anywhere; one-word names as a call's first argument
        pattern = rf'"{name}"' if name != name.lower() else rf'\(\s*"{name}"'
        assert not re.search(pattern, code), f"script name {name!r} in {path.name}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_key_names_only_in_keys(path: Path) -> None:
    if path.name == "_keys.py":
        return
    code = _code(path)
    assert not re.search(r"keys\.key\(|QueueKeys\([^)]*\)\.key\(", code)
    assert not re.search(r'f"\{[^}]*prefix[^}]*\}:', code), "a key built from the prefix"
    assert not re.search(r'"(pq|gr|g|de|dn|repeat):\S', code), "a key namespace spelled out"


@pytest.mark.parametrize("path", RAW_SCOPE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_worker_and_cli_issue_no_raw_redis_calls(path: Path) -> None:
    calls = RAW_CALL.findall(_code(path))
    assert not calls, f"raw redis-py calls {calls} in {path.name}: write a plan"


def test_the_raw_call_pattern_catches_raw_calls() -> None:
    assert RAW_CALL.search("await client.zrem(keys.workers, worker_id)")
    assert RAW_CALL.search("pipe = self._client.pipeline(transaction=False)")
    assert not RAW_CALL.search("self.slots.wake.set()")


def test_script_module_has_no_generic_call() -> None:
    assert not hasattr(S, "call")


def test_named_keys_keep_the_redis_format() -> None:
    keys = QueueKeys("bull", "q")
    assert keys.workers == "bull:q:pq:workers"
    assert keys.worker_info == "bull:q:pq:workerinfo"
    assert keys.cancel == "bull:q:pq:cancel"
    assert keys.suppressed == "bull:q:pq:suppressed"
    assert keys.quota("2026-01-02") == "bull:q:pq:quota:2026-01-02"
    assert keys.groups_all == "bull:q:gr:all"
    assert keys.groups_delayed == "bull:q:gr:delayed"
    assert keys.group_wait("g1") == "bull:q:g:g1:wait"
    assert keys.repeat == "bull:q:repeat"
    assert keys.scheduler("s") == "bull:q:repeat:s"
    assert keys.prioritized == "bull:q:prioritized"
    assert [keys.state_key(s) for s in ("waiting", "active", "paused", "delayed")] == \
        ["bull:q:wait", "bull:q:active", "bull:q:paused", "bull:q:delayed"]
    assert keys.connection_name(None) == "bull:cQ=="
    assert keys.connection_name("w1") == "bull:cQ==:w:w1"
    assert [keys.queue_marker(m) for m in QUEUE_MARKERS] == \
        ["bull:q:meta", "bull:q:id", "bull:q:pq:workers"]
    pattern = QueueKeys.queue_scan_pattern("bull", ":meta")
    assert pattern == "bull:*:meta"
    assert QueueKeys.queue_name_from_marker("bull", "bull:q:meta", ":meta") == "q"
    assert QueueKeys.queue_name_from_marker("bull", "bull:q:x:meta", ":meta") is None


def test_finish_call_packs_the_fetch_fields_without_copying() -> None:
    keys = QueueKeys("bull", "q")
    fetch = S.fetch_args(token="w:1", lock_ms=30000, n=2, wname=None, me=None, limiter=(5, 1000))
    item = S.finish_item(id="1", lock_token="w:0", target="completed", value="null",
                         keep_count=-1, keep_age_ms=0)
    command = S.move_to_finished(keys, 1, items=[item], fetch=fetch, me=10000)
    assert fetch["items"] == [item] and fetch["fetch"] is True and fetch["me"] == 10000
    assert command.tail[1] == S.pack(fetch)
    assert "stacktrace" not in item and "exhausted" not in item
