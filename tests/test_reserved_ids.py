"""Custom ids that would collide with the queue's own keys (issue 18, item 3).

A job's hash is ``<prefix>:<queue>:<id>``, the queue's keys are
``<prefix>:<queue>:<suffix>``: a job named ``meta`` or ``wait`` would
overwrite them. Every reserved name is refused with ``InvalidJobIdError``
before anything is written, through ``add`` and ``add_bulk``. Deduplication
ids and scheduler ids live in namespaces of their own (``de:``, ``dn:``,
``repeat:``): the same names are harmless there, which is checked here too;
only scheduler ids shaped like an iteration id are refused.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from pyqueue import InvalidJobIdError, InvalidJobOptionsError, Queue
from pyqueue._keys import QUEUE_SUFFIXES, RESERVED_JOB_IDS, check_job_id

RESERVED = sorted(RESERVED_JOB_IDS)


@pytest.fixture
def queue(redis_url: str, queue_name: str) -> Iterator[Queue]:
    q = Queue(queue_name, connection=redis_url)
    try:
        yield q
    finally:
        q.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield c
    finally:
        c.close()


def key_types(client: redis.Redis, queue_name: str) -> dict[str, str]:
    return {k: client.type(k) for k in client.keys(f"bull:{queue_name}:*")}


def test_every_queue_key_and_namespace_is_reserved() -> None:
    expected = {*QUEUE_SUFFIXES, "de", "dn", "metrics", "pq", "gr", "g", "repeat",
                "waiting-children", "stalled-check", "limiter", "marker", "pc", "id"}
    assert expected <= RESERVED_JOB_IDS


@pytest.mark.parametrize("job_id", RESERVED)
def test_add_refuses_a_reserved_job_id_before_any_write(
    queue: Queue, client: redis.Redis, queue_name: str, job_id: str
) -> None:
    with pytest.raises(InvalidJobIdError, match="reserved"):
        queue.add("j", {}, job_id=job_id)
    assert key_types(client, queue_name) == {}


@pytest.mark.parametrize("job_id", RESERVED)
def test_add_bulk_refuses_a_reserved_job_id_and_writes_none_of_the_batch(
    queue: Queue, client: redis.Redis, queue_name: str, job_id: str
) -> None:
    jobs = [{"name": "ok", "data": {}}, {"name": "bad", "data": {}, "opts": {"job_id": job_id}}]
    with pytest.raises(InvalidJobIdError, match=repr(job_id)):
        queue.add_bulk(jobs)
    assert key_types(client, queue_name) == {}


def test_a_job_id_that_only_resembles_a_reserved_name_is_accepted(queue: Queue) -> None:
    for job_id in ("Wait", "meta-1", "events_", "repeats", "gr0"):
        assert queue.add("j", {}, job_id=job_id).id == job_id
    assert check_job_id("x") == "x"


@pytest.mark.parametrize("name", RESERVED)
def test_a_reserved_name_as_deduplication_id_leaves_the_queue_keys_intact(
    queue: Queue, client: redis.Redis, queue_name: str, name: str
) -> None:
    first = queue.add("j", {}, deduplication={"id": name})
    second = queue.add("j", {}, deduplication={"id": name})
    assert second.id == first.id  # deduplicated: the id works as an id
    types = key_types(client, queue_name)
    assert types[f"bull:{queue_name}:de:{name}"] == "string"
    assert types[f"bull:{queue_name}:wait"] == "list"
    assert types[f"bull:{queue_name}:meta"] == "hash"
    assert types[f"bull:{queue_name}:events"] == "stream"
    assert queue.get_job_counts("waiting") == {"waiting": 1}


@pytest.mark.parametrize("name", RESERVED)
def test_a_reserved_name_as_scheduler_id_leaves_the_queue_keys_intact(
    queue: Queue, client: redis.Redis, queue_name: str, name: str
) -> None:
    job = queue.upsert_job_scheduler(name, every=3600, template={"name": "tick"})
    assert job.id.startswith(f"repeat:{name}:")
    types = key_types(client, queue_name)
    assert types[f"bull:{queue_name}:repeat"] == "zset"
    assert types[f"bull:{queue_name}:repeat:{name}"] == "hash"
    assert types[f"bull:{queue_name}:{job.id}"] == "hash"
    assert types[f"bull:{queue_name}:meta"] == "hash"
    assert queue.get_job_scheduler(name) is not None
    assert queue.remove_job_scheduler(name)


@pytest.mark.parametrize("scheduler_id", ["a:1735689600000", "a:1735689600000:logs",
                                          "x:y:12345678901:lock"])
def test_a_scheduler_id_shaped_like_an_iteration_id_is_refused(
    queue: Queue, client: redis.Redis, queue_name: str, scheduler_id: str
) -> None:
    with pytest.raises(InvalidJobOptionsError, match="iteration"):
        queue.upsert_job_scheduler(scheduler_id, every=60)
    assert key_types(client, queue_name) == {}


def test_the_collision_the_check_prevents(
    queue: Queue, client: redis.Redis, queue_name: str
) -> None:
    """Scheduler "a:<ms>" would be stored where scheduler "a" keeps its
    iteration due at <ms>: that is why such ids are refused."""
    job = queue.upsert_job_scheduler("a", every=60)
    ms = job.id.rsplit(":", 1)[1]
    with pytest.raises(InvalidJobOptionsError):
        queue.upsert_job_scheduler(f"a:{ms}", every=60)
    assert client.type(f"bull:{queue_name}:repeat:a:{ms}") == "hash"
    assert client.hget(f"bull:{queue_name}:repeat:a:{ms}", "rjk") == "a"


def test_default_scheduler_ids_of_add_with_repeat_are_still_accepted(queue: Queue) -> None:
    job = queue.add("report", {}, repeat={"every": 60})
    assert job.id.startswith("repeat:report:60:")
