"""Bad input: a typed error (ValueError/TypeError subclass) naming the option,
raised at the call, before anything is written to Redis."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import _helpers_queue
import pytest
import redis
from _helpers_queue import (
    call,
    queue_keys,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import pyqueue
import pyqueue.errors
from pyqueue import (
    AsyncQueue,
    ConfigurationError,
    InvalidJobDataError,
    InvalidJobIdError,
    InvalidJobOptionsError,
    InvalidQueueNameError,
    PayloadTooLargeError,
    PyQueueError,
    Queue,
    QueueEvents,
    Worker,
)

Q = Queue | AsyncQueue
NAN = float("nan")
INF = float("inf")


# Shared fixtures (defined in _helpers_queue).
anyq = _helpers_queue.anyq
sq = _helpers_queue.sq


def assert_nothing_written(r: redis.Redis, queue_name: str) -> None:
    assert r.keys(f"bull:{queue_name}*") == []


def check_error(exc: BaseException, cls: type[BaseException], mentions: str) -> None:
    assert isinstance(exc, cls), f"{type(exc).__name__} is not a {cls.__name__}"
    assert isinstance(exc, ConfigurationError)
    assert isinstance(exc, PyQueueError)
    assert isinstance(exc, ValueError | TypeError)
    assert mentions in str(exc), f"{mentions!r} not named in {str(exc)!r}"


# (options, expected error class, text the message must contain)
BAD_OPTIONS: list[tuple[dict[str, Any], type[ConfigurationError], str]] = [
    # delay
    ({"delay": -1}, InvalidJobOptionsError, "delay"),
    ({"delay": -0.001}, InvalidJobOptionsError, "delay"),
    ({"delay": NAN}, InvalidJobOptionsError, "delay"),
    ({"delay": INF}, InvalidJobOptionsError, "delay"),
    ({"delay": -INF}, InvalidJobOptionsError, "delay"),
    ({"delay": "10"}, InvalidJobOptionsError, "delay"),
    ({"delay": [1]}, InvalidJobOptionsError, "delay"),
    ({"delay": True}, InvalidJobOptionsError, "delay"),
    ({"delay": timedelta(seconds=-1)}, InvalidJobOptionsError, "delay"),
    # priority
    ({"priority": 1.5}, InvalidJobOptionsError, "priority"),
    ({"priority": 1.0}, InvalidJobOptionsError, "priority"),
    ({"priority": -1}, InvalidJobOptionsError, "priority"),
    ({"priority": 2**21}, InvalidJobOptionsError, "priority"),
    ({"priority": 2**40}, InvalidJobOptionsError, "priority"),
    ({"priority": True}, InvalidJobOptionsError, "priority"),
    ({"priority": "1"}, InvalidJobOptionsError, "priority"),
    # attempts
    ({"attempts": 0}, InvalidJobOptionsError, "attempts"),
    ({"attempts": -3}, InvalidJobOptionsError, "attempts"),
    ({"attempts": 2.5}, InvalidJobOptionsError, "attempts"),
    ({"attempts": True}, InvalidJobOptionsError, "attempts"),
    ({"attempts": "3"}, InvalidJobOptionsError, "attempts"),
    # backoff
    ({"backoff": {"type": "nope", "delay": 1}}, InvalidJobOptionsError, "backoff"),
    ({"backoff": {"type": 5, "delay": 1}}, InvalidJobOptionsError, "backoff"),
    ({"backoff": {"type": "fixed", "delay": -1}}, InvalidJobOptionsError, "backoff.delay"),
    ({"backoff": {"type": "fixed", "delay": NAN}}, InvalidJobOptionsError, "backoff.delay"),
    ({"backoff": {"type": "exponential", "delay": 1, "jitter": 2}}, InvalidJobOptionsError,
     "jitter"),
    ({"backoff": {"type": "exponential", "delay": 1, "jitter": -0.1}}, InvalidJobOptionsError,
     "jitter"),
    ({"backoff": {"type": "fixed", "delay": 1, "jitter": True}}, InvalidJobOptionsError,
     "jitter"),
    ({"backoff": {"type": "fixed", "delay": 1, "jitter": "0.5"}}, InvalidJobOptionsError,
     "jitter"),
    ({"backoff": {"type": "fixed", "delay": 1, "jitter": NAN}}, InvalidJobOptionsError,
     "jitter"),
    ({"backoff": {"type": "fixed", "delay": 1, "extra": 1}}, InvalidJobOptionsError, "backoff"),
    ({"backoff": "5"}, InvalidJobOptionsError, "backoff"),
    ({"backoff": -1}, InvalidJobOptionsError, "backoff"),
    ({"backoff": True}, InvalidJobOptionsError, "backoff"),
    ({"backoff": [1]}, InvalidJobOptionsError, "backoff"),
    # lifo
    ({"lifo": "yes"}, InvalidJobOptionsError, "lifo"),
    ({"lifo": 1}, InvalidJobOptionsError, "lifo"),
    # unknown options
    ({"colour": "red"}, InvalidJobOptionsError, "colour"),
    ({"removeOnComplete": True}, InvalidJobOptionsError, "removeOnComplete"),
    ({"jobId": "abc"}, InvalidJobOptionsError, "jobId"),
    ({"repeat": {"every": 0}}, InvalidJobOptionsError, "every"),
    ({"repeat": {"pattern": "61 * * * *"}}, InvalidJobOptionsError, "pattern"),
    ({"repeat": {"every": 1, "colour": 1}}, InvalidJobOptionsError, "repeat"),
    # retention
    ({"remove_on_complete": -1}, InvalidJobOptionsError, "remove_on_complete"),
    ({"remove_on_complete": "x"}, InvalidJobOptionsError, "remove_on_complete"),
    ({"remove_on_complete": 1.5}, InvalidJobOptionsError, "remove_on_complete"),
    ({"remove_on_complete": [1]}, InvalidJobOptionsError, "remove_on_complete"),
    ({"remove_on_complete": {"age": -1}}, InvalidJobOptionsError, "remove_on_complete.age"),
    ({"remove_on_complete": {"age": "1"}}, InvalidJobOptionsError, "remove_on_complete.age"),
    ({"remove_on_complete": {"count": -1}}, InvalidJobOptionsError,
     "remove_on_complete.count"),
    ({"remove_on_complete": {"count": 1.5}}, InvalidJobOptionsError,
     "remove_on_complete.count"),
    ({"remove_on_complete": {"bogus": 1}}, InvalidJobOptionsError, "remove_on_complete"),
    ({"remove_on_fail": -5}, InvalidJobOptionsError, "remove_on_fail"),
    ({"remove_on_fail": {"age": NAN}}, InvalidJobOptionsError, "remove_on_fail.age"),
    ({"remove_on_fail": {"count": True}}, InvalidJobOptionsError, "remove_on_fail.count"),
    # deduplication
    ({"deduplication": "x"}, InvalidJobOptionsError, "deduplication"),
    ({"deduplication": {"id": ""}}, InvalidJobOptionsError, "deduplication"),
    ({"deduplication": {"id": 1}}, InvalidJobOptionsError, "deduplication"),
    ({"deduplication": {"ttl": 1}}, InvalidJobOptionsError, "deduplication"),
    ({"deduplication": {"id": "a", "ttl": -1}}, InvalidJobOptionsError, "deduplication.ttl"),
    ({"deduplication": {"id": "a", "ttl": 0}}, InvalidJobOptionsError, "deduplication.ttl"),
    ({"deduplication": {"id": "a", "ttl": "1"}}, InvalidJobOptionsError, "deduplication.ttl"),
    ({"deduplication": {"id": "a", "extra": 1}}, InvalidJobOptionsError, "deduplication"),
    # timeout
    ({"timeout": 0}, InvalidJobOptionsError, "timeout"),
    ({"timeout": -1}, InvalidJobOptionsError, "timeout"),
    ({"timeout": "1"}, InvalidJobOptionsError, "timeout"),
    ({"timeout": NAN}, InvalidJobOptionsError, "timeout"),
    # keep_logs
    ({"keep_logs": 0}, InvalidJobOptionsError, "keep_logs"),
    ({"keep_logs": "5"}, InvalidJobOptionsError, "keep_logs"),
    ({"keep_logs": True}, InvalidJobOptionsError, "keep_logs"),
    ({"keep_logs": 1.5}, InvalidJobOptionsError, "keep_logs"),
    # job_id
    ({"job_id": "123"}, InvalidJobIdError, "job_id"),
    ({"job_id": "0"}, InvalidJobIdError, "job_id"),
    ({"job_id": "a:b"}, InvalidJobIdError, "job_id"),
    ({"job_id": ":"}, InvalidJobIdError, "job_id"),
    ({"job_id": ""}, InvalidJobIdError, "job_id"),
    ({"job_id": 5}, InvalidJobIdError, "job_id"),
    ({"job_id": 1.5}, InvalidJobIdError, "job_id"),
    ({"job_id": True}, InvalidJobIdError, "job_id"),
    ({"job_id": ["a"]}, InvalidJobIdError, "job_id"),
    ({"job_id": b"abc"}, InvalidJobIdError, "job_id"),
]


@pytest.mark.parametrize(("opts", "cls", "mentions"), BAD_OPTIONS,
                         ids=[repr(o) for o, _, _ in BAD_OPTIONS])
async def test_bad_option_is_refused_before_any_write(
        anyq: Q, redis_client: redis.Redis, queue_name: str, opts: dict[str, Any],
        cls: type[ConfigurationError], mentions: str) -> None:
    with pytest.raises(cls) as info:
        await call(anyq.add("job", {"x": 1}, **opts))
    check_error(info.value, cls, mentions)
    assert_nothing_written(redis_client, queue_name)


BAD_DATA = [
    {1, 2},
    object(),
    NAN,
    {"a": INF},
    [1, -INF],
    b"bytes",
    {"nested": {"set": {1}}},
    {(1, 2): "tuple key"},
    {1: "int key is fine in JSON", "x": object()},
]


@pytest.mark.parametrize("data", BAD_DATA, ids=[repr(type(d).__name__) + str(i)
                                                 for i, d in enumerate(BAD_DATA)])
async def test_non_json_data_is_refused(anyq: Q, redis_client: redis.Redis, queue_name: str,
                                        data: Any) -> None:
    with pytest.raises(InvalidJobDataError) as info:
        await call(anyq.add("job", data))
    check_error(info.value, InvalidJobDataError, "data")
    assert isinstance(info.value, TypeError)
    assert_nothing_written(redis_client, queue_name)


async def test_data_with_a_lone_surrogate_is_refused_as_invalid_data(
        anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    with pytest.raises(InvalidJobDataError) as info:
        await call(anyq.add("job", {"text": "bad \ud800 half"}))
    check_error(info.value, InvalidJobDataError, "data")
    assert_nothing_written(redis_client, queue_name)


@pytest.mark.parametrize("kwargs", [
    {"name": "n\ud800"},
    {"job_id": "id\udfff"},
    {"deduplication": {"id": "d\ud800"}},
], ids=["name", "job_id", "dedup-id"])
def test_strings_with_a_lone_surrogate_raise_configuration_errors(
        sq: Queue, redis_client: redis.Redis, queue_name: str, kwargs: dict[str, Any]) -> None:
    name = kwargs.pop("name", "job")
    with pytest.raises(ConfigurationError):
        sq.add(name, None, **kwargs)
    assert_nothing_written(redis_client, queue_name)


@pytest.mark.parametrize("opts", [
    {"delay": 10**20},
    {"delay": 1e300},
    {"deduplication": {"id": "x", "ttl": 10**20}},
], ids=["delay-int", "delay-float", "dedup-ttl"])
def test_huge_durations_raise_configuration_errors(
        sq: Queue, redis_client: redis.Redis, queue_name: str, opts: dict[str, Any]) -> None:
    with pytest.raises(InvalidJobOptionsError):
        sq.add("job", None, **opts)
    assert_nothing_written(redis_client, queue_name)


async def test_job_name_must_be_a_string(anyq: Q, redis_client: redis.Redis,
                                         queue_name: str) -> None:
    for name in (5, None, b"name", ["n"]):
        with pytest.raises(InvalidJobOptionsError) as info:
            await call(anyq.add(name, {}))  # type: ignore[arg-type]
        check_error(info.value, InvalidJobOptionsError, "name")
    assert_nothing_written(redis_client, queue_name)


async def test_priority_bounds(anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    with pytest.raises(InvalidJobOptionsError):
        await call(anyq.add("job", None, priority=2**21))
    assert_nothing_written(redis_client, queue_name)
    top = await call(anyq.add("job", None, priority=2**21 - 1))
    zero = await call(anyq.add("job", None, priority=0))
    assert await call(anyq.get_job_state(top.id)) == "prioritized"
    assert await call(anyq.get_job_state(zero.id)) == "waiting"


async def test_valid_edge_values_are_accepted(anyq: Q) -> None:
    job = await call(anyq.add(
        "job", None, delay=0, attempts=1, lifo=False, job_id="-1",
        backoff={"type": "fixed", "delay": 0, "jitter": 1}, remove_on_complete=0,
        remove_on_fail={"age": timedelta(hours=1), "count": 0}, keep_logs=1,
        deduplication={"id": "d", "ttl": 0.001}, timeout=0.001, priority=None))
    assert job.id == "-1"
    assert await call(anyq.get_job_state("-1")) == "waiting"


async def test_payload_over_the_limit_is_refused(redis_url: str, queue_name: str,
                                                 redis_client: redis.Redis) -> None:
    with Queue(queue_name, connection=redis_url, max_payload_bytes=100) as q:
        ok = q.add("fits", "x" * 98)  # 100 bytes of JSON
        before = _snapshot(redis_client, queue_name)
        with pytest.raises(PayloadTooLargeError) as info:
            q.add("big", "x" * 99)
        check_error(info.value, PayloadTooLargeError, "max_payload_bytes")
        with pytest.raises(PayloadTooLargeError):
            q.add("wide", "é" * 60)  # 60 characters, 122 bytes
        with pytest.raises(PayloadTooLargeError):
            q.add_bulk([{"name": "small", "data": 1}, {"name": "big", "data": "y" * 500}])
        assert _snapshot(redis_client, queue_name) == before
        assert q.get_job_counts("waiting") == {"waiting": 1}
    assert redis_client.get(f"bull:{queue_name}:id") == b"1"
    assert ok.id == "1"


async def test_default_payload_limit(redis_url: str, queue_name: str,
                                     redis_client: redis.Redis) -> None:
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        with pytest.raises(PayloadTooLargeError):
            await q.add("big", "x" * (512 * 1024))
    assert_nothing_written(redis_client, queue_name)


BAD_BULK: list[tuple[Any, type[ConfigurationError]]] = [
    ([{"name": "ok", "data": 1}, {"name": "bad", "data": 1, "opts": {"delay": -1}}],
     InvalidJobOptionsError),
    ([{"name": "ok", "data": 1}, {"name": "bad", "data": {1, 2}}], InvalidJobDataError),
    ([{"name": "ok", "data": 1}, {"name": "bad", "opts": {"job_id": "12"}}], InvalidJobIdError),
    ([{"name": "ok", "data": 1}, {"data": 1}], InvalidJobOptionsError),
    ([{"name": "ok", "data": 1}, {"name": "a", "bogus": 1}], InvalidJobOptionsError),
    ([{"name": "ok", "data": 1}, {"name": "a", "opts": "x"}], InvalidJobOptionsError),
    ([{"name": "ok", "data": 1}, 5], InvalidJobOptionsError),
    ([{"name": "ok", "data": 1}, {"name": "a", "opts": {"colour": 1}}], InvalidJobOptionsError),
    ("not a list", InvalidJobOptionsError),
    ({"name": "a"}, InvalidJobOptionsError),
    (None, InvalidJobOptionsError),
]


@pytest.mark.parametrize(("jobs", "cls"), BAD_BULK, ids=[str(i) for i in range(len(BAD_BULK))])
async def test_add_bulk_with_a_bad_item_writes_nothing(
        anyq: Q, redis_client: redis.Redis, queue_name: str, jobs: Any,
        cls: type[ConfigurationError]) -> None:
    with pytest.raises(cls) as info:
        await call(anyq.add_bulk(jobs))
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, ValueError)
    assert_nothing_written(redis_client, queue_name)


BAD_NAMES = ["", "a:b", ":", 5, None, b"queue", ["q"]]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n) for n in BAD_NAMES])
@pytest.mark.parametrize("cls", [Queue, AsyncQueue, QueueEvents])
def test_bad_queue_name_raises_at_construction(cls: Any, name: Any, redis_url: str) -> None:
    with pytest.raises(InvalidQueueNameError) as info:
        cls(name, connection=redis_url)
    check_error(info.value, InvalidQueueNameError, "queue name")


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n) for n in BAD_NAMES])
def test_bad_queue_name_raises_at_worker_construction(name: Any, redis_url: str) -> None:
    async def proc(job: Any) -> None:
        return None

    with pytest.raises(InvalidQueueNameError):
        Worker(name, proc, connection=redis_url, autorun=False)


@pytest.mark.parametrize("prefix", ["", 5, None])
def test_bad_prefix_raises_at_construction(prefix: Any, redis_url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Queue("ok", connection=redis_url, prefix=prefix)
    assert "prefix" in str(info.value)


BAD_DEFAULTS: list[tuple[Any, type[ConfigurationError], str]] = [
    ({"attempts": 0}, InvalidJobOptionsError, "attempts"),
    ({"delay": -1}, InvalidJobOptionsError, "delay"),
    ({"priority": 2**21}, InvalidJobOptionsError, "priority"),
    ({"colour": "red"}, InvalidJobOptionsError, "colour"),
    ({"backoff": {"type": "nope"}}, InvalidJobOptionsError, "backoff"),
    ({"remove_on_complete": -1}, InvalidJobOptionsError, "remove_on_complete"),
    ({"job_id": "12"}, InvalidJobIdError, "job_id"),
    ("attempts=3", InvalidJobOptionsError, "default_job_options"),
    ([("attempts", 3)], InvalidJobOptionsError, "default_job_options"),
]


@pytest.mark.parametrize(("defaults", "cls", "mentions"), BAD_DEFAULTS,
                         ids=[repr(d) for d, _, _ in BAD_DEFAULTS])
@pytest.mark.parametrize("queue_cls", [Queue, AsyncQueue])
def test_bad_default_job_options_raise_at_construction(
        queue_cls: Any, defaults: Any, cls: type[ConfigurationError], mentions: str,
        redis_url: str, queue_name: str, redis_client: redis.Redis) -> None:
    with pytest.raises(cls) as info:
        queue_cls(queue_name, connection=redis_url, default_job_options=defaults)
    check_error(info.value, cls, mentions)
    assert_nothing_written(redis_client, queue_name)


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "10", None])
def test_bad_max_payload_bytes_raises_at_construction(value: Any, redis_url: str) -> None:
    with pytest.raises(InvalidJobOptionsError) as info:
        Queue("ok", connection=redis_url, max_payload_bytes=value)
    check_error(info.value, InvalidJobOptionsError, "max_payload_bytes")


BAD_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any], str]] = [
    ("clean", (-1,), {}, "grace"),
    ("clean", (NAN,), {}, "grace"),
    ("clean", ("60",), {}, "grace"),
    ("clean", (0,), {"limit": -1}, "limit"),
    ("clean", (0,), {"limit": 1.5}, "limit"),
    ("clean", (0,), {"state": "bogus"}, "state"),
    ("clean", (0,), {"state": 5}, "state"),
    ("retry_jobs", (), {"state": "waiting"}, "state"),
    ("retry_jobs", (), {"count": 0}, "count"),
    ("retry_jobs", (), {"count": True}, "count"),
    ("set_global_concurrency", (-1,), {}, "concurrency"),
    ("set_global_concurrency", (1.5,), {}, "concurrency"),
    ("set_global_concurrency", (True,), {}, "concurrency"),
    ("set_global_rate_limit", (-1, 1), {}, "max"),
    ("set_global_rate_limit", (2.5, 1), {}, "max"),
    ("set_global_rate_limit", (5, 0), {}, "duration"),
    ("set_global_rate_limit", (5, -1), {}, "duration"),
    ("set_global_rate_limit", (5, NAN), {}, "duration"),
    ("get_job_counts", ("bogus",), {}, "state"),
    ("get_jobs", ("bogus",), {}, "state"),
    ("get_jobs", (["waiting", "nope"],), {}, "state"),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "mentions"), BAD_CALLS,
                         ids=[f"{m}{a}{k}" for m, a, k, _ in BAD_CALLS])
async def test_bad_queue_method_arguments(anyq: Q, redis_client: redis.Redis, queue_name: str,
                                          method: str, args: tuple[Any, ...],
                                          kwargs: dict[str, Any], mentions: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        await call(getattr(anyq, method)(*args, **kwargs))
    check_error(info.value, ConfigurationError, mentions)
    assert_nothing_written(redis_client, queue_name)


async def test_job_methods_refuse_non_json_before_writing(
        anyq: Q, redis_client: redis.Redis, queue_name: str) -> None:
    job = await call(anyq.add("job", {"v": 1}))
    before = redis_client.hgetall(f"bull:{queue_name}:{job.id}")
    events_before = redis_client.xlen(f"bull:{queue_name}:events")
    with pytest.raises(InvalidJobDataError):
        await call(job.update_data({"s": {1}}))
    with pytest.raises(InvalidJobDataError):
        await call(job.update_data(NAN))
    with pytest.raises(InvalidJobDataError) as info:
        await call(job.update_progress(object()))
    assert "progress" in str(info.value)
    assert redis_client.hgetall(f"bull:{queue_name}:{job.id}") == before
    assert redis_client.xlen(f"bull:{queue_name}:events") == events_before
    assert job.data == {"v": 1}


# --- property tests -------------------------------------------------------------------

OPTION_NAMES = ["job_id", "priority", "delay", "attempts", "backoff", "lifo",
                "remove_on_complete", "remove_on_fail", "deduplication", "timeout",
                "keep_logs", "colour", "repeat"]


def option_values(big: bool) -> st.SearchStrategy[Any]:
    ints = st.integers() if big else st.integers(min_value=-(2**40), max_value=2**40)
    floats = st.floats() if big else st.one_of(
        st.floats(min_value=-1e9, max_value=1e9), st.sampled_from([NAN, INF, -INF]))
    scalars = st.one_of(st.none(), st.booleans(), ints, floats, st.text(max_size=12),
                        st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=2)))
    keys = st.sampled_from(["type", "delay", "jitter", "id", "ttl", "age", "count", "every",
                            "x"])
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        st.dictionaries(keys, st.one_of(scalars, st.sampled_from(["fixed", "exponential"])),
                        max_size=3),
    )


def _snapshot(r: redis.Redis, queue_name: str) -> tuple[list[str], bytes | None]:
    return queue_keys(r, queue_name), r.get(f"bull:{queue_name}:id")


def _add_or_configuration_error(q: Queue, r: redis.Redis, queue_name: str,
                                opts: dict[str, Any]) -> None:
    before = _snapshot(r, queue_name)
    try:
        job = q.add("prop", {"v": 1}, **opts)
    except ConfigurationError as exc:
        assert isinstance(exc, ValueError | TypeError)
        assert str(exc)
        assert _snapshot(r, queue_name) == before
    else:
        assert job.id
        assert q.get_job_state(job.id) in {"waiting", "prioritized", "delayed"}


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opts=st.dictionaries(st.sampled_from(OPTION_NAMES), option_values(big=False),
                            max_size=3))
def test_add_either_succeeds_or_raises_a_configuration_error(
        sq: Queue, redis_client: redis.Redis, queue_name: str, opts: dict[str, Any]) -> None:
    _add_or_configuration_error(sq, redis_client, queue_name, opts)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opts=st.dictionaries(st.sampled_from(OPTION_NAMES), option_values(big=True),
                            max_size=3))
@example(opts={"delay": 10**20})
def test_add_with_unbounded_values_raises_only_configuration_errors(
        sq: Queue, redis_client: redis.Redis, queue_name: str, opts: dict[str, Any]) -> None:
    _add_or_configuration_error(sq, redis_client, queue_name, opts)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**53), max_value=2**53),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=5), children, max_size=4)),
    max_leaves=12,
)
non_json = st.one_of(st.sets(st.integers(), min_size=1, max_size=3),
                     st.sampled_from([NAN, INF, -INF]), st.builds(object),
                     st.binary(max_size=3))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(json_values, st.lists(st.one_of(json_values, non_json), min_size=1,
                                           max_size=3)))
def test_data_round_trips_or_is_refused_as_invalid_data(
        sq: Queue, redis_client: redis.Redis, queue_name: str, data: Any) -> None:
    before = _snapshot(redis_client, queue_name)
    try:
        job = sq.add("data", data)
    except InvalidJobDataError:
        assert _snapshot(redis_client, queue_name) == before
        return
    stored = sq.get_job(job.id)
    assert stored is not None
    assert stored.data == data
    assert job.data == data


# --- the public names ---------------------------------------------------------------


def test_every_exception_is_importable_from_pyqueue() -> None:
    for name in pyqueue.errors.__all__:
        assert getattr(pyqueue, name) is getattr(pyqueue.errors, name)
        assert name in pyqueue.__all__
        assert issubclass(getattr(pyqueue, name), pyqueue.PyQueueError)
    for name in pyqueue.__all__:
        assert hasattr(pyqueue, name), name


def test_argument_errors_are_value_errors() -> None:
    for cls in (ConfigurationError, InvalidQueueNameError, InvalidJobIdError,
                InvalidJobOptionsError, InvalidJobDataError, PayloadTooLargeError):
        assert issubclass(cls, ValueError)
        assert issubclass(cls, PyQueueError)
    assert issubclass(InvalidJobDataError, TypeError)
    assert math.isnan(NAN)  # the constant used throughout is really NaN


# --- nesting depth (issue 18 item 7) --------------------------------------------------


def nested(depth: int) -> object:
    value: object = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def test_data_nested_too_deep_is_refused_before_any_write(
        redis_url: str, redis_client: redis.Redis, queue_name: str) -> None:
    from pyqueue.options import MAX_JSON_DEPTH
    with Queue(queue_name, connection=redis_url) as queue:
        for depth in (MAX_JSON_DEPTH + 1, 10_000):
            with pytest.raises(InvalidJobDataError, match=f"deeper than {MAX_JSON_DEPTH}"):
                queue.add("deep", nested(depth))
            with pytest.raises(InvalidJobDataError, match="deeper than"):
                queue.add_bulk([{"name": "deep", "data": nested(depth)}])
        assert redis_client.keys(f"bull:{queue_name}:*") == []
        job = queue.add("deep-enough", nested(MAX_JSON_DEPTH))
        stored = queue.get_job(job.id)
        assert stored is not None and stored.data == nested(MAX_JSON_DEPTH)


def test_many_brackets_in_shallow_data_are_fine() -> None:
    from pyqueue.options import encode_json
    wide = {"text": "[[[[{{{{" * 100, "items": [[1], [2]] * 100}
    assert json.loads(encode_json(wide, "data")) == wide
