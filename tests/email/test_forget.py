"""GDPR erase: ``pyqueue email --queue Q forget ADDRESS`` leaves nothing of the
address in Redis (every key and value is searched) but keeps it suppressed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.cluster
from _smtp import SMTPServer
from _worker_helpers import wait_for

from pyqueue import Queue
from pyqueue._keys import QueueKeys
from pyqueue.email import SendLimit, Suppressions, enqueue_email, forget
from pyqueue.email.cli import main
from pyqueue.email.forget import address_pattern
from pyqueue.email.sendlimits import SendLimits
from pyqueue.email.suppressions import AsyncSuppressions, address_digest


def every_value(client: redis.Redis, key: bytes) -> list[bytes]:
    kind = client.type(key)
    if kind == b"string":
        return [client.get(key) or b""]
    if kind == b"hash":
        return [x for kv in client.hgetall(key).items() for x in kv]
    if kind == b"list":
        return list(client.lrange(key, 0, -1))
    if kind == b"set":
        return list(client.smembers(key))
    if kind == b"zset":
        return [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
    if kind == b"stream":
        return [x for _, fields in client.xrange(key) for kv in fields.items() for x in kv]
    return []


def mentions(client: redis.Redis, text: str) -> list[str]:
    """Every key whose name or value holds ``text`` (case-insensitive), in the whole db."""
    needle = text.lower().encode()
    found = []
    for key in client.scan_iter(count=1000):
        if needle in key.lower() or any(needle in v.lower() for v in every_value(client, key)):
            found.append(key.decode())
    return found


async def state(queue: Queue, job_id: str, wanted: str) -> None:
    await wait_for(lambda: queue.get_job_state(job_id) == wanted, 10, f"{job_id} {wanted}")


async def test_forget_leaves_nothing_but_a_hashed_suppression(
        queue: Queue, smtp_server: SMTPServer, started: Any, redis_client: redis.Redis,
        redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    token = uuid.uuid4().hex[:10]
    addr = f"zoe.{token}@example.com"
    shouted = f"Zoe <ZOE.{token}@EXAMPLE.com>"
    other = f"other.{token}@example.org"
    # Completed (return value and "completed" event hold the address), with a log line.
    sent = enqueue_email(queue, to=shouted, subject="x", text="x", mail_uid=f"c{token}")
    cc = enqueue_email(queue, to=other, cc=addr, subject="x", text="x", mail_uid=f"cc{token}")
    keep = enqueue_email(queue, to=other, subject="x", text="x", mail_uid=f"k{token}")
    worker = await started()
    for job in (sent, cc, keep):
        await state(queue, job.id, "completed")
    stored = queue.get_job(sent.id)
    assert stored is not None
    stored.log(f"delivered to {addr}")
    # Failed, and copied to the dead-letter queue.
    smtp_server.handler.fail_data("554 5.7.1 rejected", times=1)
    failed = enqueue_email(queue, to=addr, subject="x", text="x", mail_uid=f"f{token}",
                           attempts=1)
    await state(queue, failed.id, "failed")
    await worker.close()
    # Waiting, delayed, prioritized and grouped.
    waiting = [
        enqueue_email(queue, to=addr, subject="x", text="x", mail_uid=f"w{token}"),
        enqueue_email(queue, to=addr, subject="x", text="x", mail_uid=f"d{token}", delay=3600),
        enqueue_email(queue, to=addr, subject="x", text="x", mail_uid=f"b{token}",
                      category="bulk"),
        enqueue_email(queue, to=addr, subject="x", text="x", mail_uid=f"g{token}",
                      group_by_domain=True),
    ]
    queued_other = enqueue_email(queue, to=other, subject="x", text="x", mail_uid=f"o{token}")
    # A suppression, a soft-bounce counter and a limit window.
    with Suppressions.of(queue) as supp:
        supp.add(addr, f"hard bounce: 550 5.1.1 <{addr}> unknown", source="smtp")
    keys = QueueKeys("bull", queue.name)
    redis_client.set(keys.soft_bounces(address_digest(addr)), 2)
    aclient = redis.asyncio.Redis.from_url(redis_url)
    limits = SendLimits(aclient, keys, [SendLimit("otp", 3, 600)])
    assert await limits.take("x", {}, [addr]) is None
    assert mentions(redis_client, addr)

    status = main(["email", "--queue", queue.name, "--redis", redis_url, "forget", shouted,
                   "--json"])
    assert status == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["completed"] == 2 and counts["failed"] == 1
    assert counts["dead_letters"] == 1 and counts["events"] >= 3
    assert sum(counts.get(s, 0) for s in ("waiting", "delayed", "prioritized")) == 4
    assert counts["counters"] == 2 and counts["busy"] == 0 and counts["suppressed"] == 1

    assert mentions(redis_client, addr) == []
    assert mentions(redis_client, address_digest(addr)) == [keys.suppressed]
    for job in (keep, queued_other):
        assert queue.get_job(job.id) is not None
    for job in (sent, cc, failed, *waiting):
        assert queue.get_job(job.id) is None
    # Still suppressed: the worker's lookup finds the hashed entry.
    supp_async = AsyncSuppressions(queue.name, connection=aclient)
    assert list(await supp_async.suppressed([addr])) == [addr]
    with Suppressions.of(queue) as supp:
        entry = supp.get(addr.upper())
    assert entry is not None and entry["address"].startswith("sha256:")
    assert entry["reason"] == "forgotten (was suppressed)" and entry["source"] == "forget"
    await aclient.aclose()


def test_forget_matches_whole_addresses_only(queue: Queue, redis_client: redis.Redis) -> None:
    token = uuid.uuid4().hex[:10]
    addr = f"da{token}@example.com"
    near = [f"ada{token}@example.com", f"da{token}@example.com.au", f"x.da{token}@example.com"]
    jobs = [enqueue_email(queue, to=a, subject="x", text="x") for a in near]
    mine = enqueue_email(queue, to=f"DA{token}@Example.COM", subject="x", text="x")
    counts = forget(queue, addr)
    assert counts["prioritized"] == 1 and queue.get_job(mine.id) is None
    assert all(queue.get_job(j.id) is not None for j in jobs)
    pattern = address_pattern(addr)
    assert pattern.search(f"<{addr}>") and pattern.search(f'"{addr}",')
    assert pattern.search(f"{addr}.") and not pattern.search(near[1])
    with pytest.raises(ValueError):
        forget(queue, "not an address")


async def test_an_active_job_is_reported_busy_then_forgotten(queue: Queue,
                                                             redis_url: str) -> None:
    import asyncio

    from pyqueue import Worker

    release = asyncio.Event()
    started_job = asyncio.Event()

    async def hold(job: Any) -> None:
        started_job.set()
        await release.wait()

    addr = f"kim.{uuid.uuid4().hex[:8]}@example.com"
    job = enqueue_email(queue, to=addr, subject="x", text="x")
    worker = Worker(queue.name, hold, connection=redis_url, autorun=False)
    await worker.start()
    await asyncio.wait_for(started_job.wait(), 10)
    counts = await asyncio.to_thread(forget, queue, addr, wait=0.3)
    assert counts["busy"] == 1 and queue.get_job(job.id) is not None
    release.set()
    await state(queue, job.id, "completed")
    await worker.close()
    counts = await asyncio.to_thread(forget, queue, addr)
    assert counts["busy"] == 0 and counts["completed"] == 1
    assert queue.get_job(job.id) is None


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Any:
    """The session's local Redis Cluster (skipped without ``redis-cli``)."""
    from pyqueue.errors import RedisConnectionError
    from pyqueue.testing.cluster import redis_cli

    try:
        redis_cli()
    except RedisConnectionError as exc:
        pytest.skip(str(exc))
    return request.getfixturevalue("pyqueue_redis_cluster")


def cluster_mentions(client: redis.cluster.RedisCluster, text: str) -> list[str]:
    """``mentions`` over every primary of the cluster."""
    return [key for node in client.get_primaries()
            for key in mentions(client.get_redis_connection(node), text)]


def test_forget_on_a_cluster_queue_removes_one_recipient_only(cluster: Any) -> None:
    from pyqueue.email.deadletter import dlq_name
    from pyqueue.email.forget import _scanner

    token = uuid.uuid4().hex[:10]
    addr, other = f"ivy.{token}@example.com", f"other.{token}@example.org"
    name = f"{{mail{token}}}"
    keys = QueueKeys("bull", name)
    with Queue(name, connection=cluster.url) as queue:
        client = queue.client
        assert isinstance(client, redis.cluster.RedisCluster)
        mine = [
            enqueue_email(queue, to=addr, subject="x", text="x", mail_uid=f"w{token}"),
            enqueue_email(queue, to=addr, subject="x", text="x", mail_uid=f"d{token}",
                          delay=3600),
            enqueue_email(queue, to=addr, subject="x", text="x", mail_uid=f"b{token}",
                          category="bulk"),
            enqueue_email(queue, to=addr, subject="x", text="x", mail_uid=f"g{token}",
                          group_by_domain=True),
        ]
        keep = enqueue_email(queue, to=other, subject="x", text="x", mail_uid=f"k{token}")
        stored = queue.get_job(keep.id)
        assert stored is not None
        stored.log(f"delivered to {other}")
        with Queue(dlq_name(name), connection=client) as dlq:
            dead = dlq.add("mail", {"to": addr})
            dead_other = dlq.add("mail", {"to": other})
        with Suppressions.of(queue) as supp:
            supp.add(addr, "hard bounce", source="smtp")
            supp.add(other, "hard bounce", source="smtp")
        for who in (addr, other):
            client.set(keys.soft_bounces(address_digest(who)), 2)
            client.zadd(keys.send_window("otp", address_digest(who)), {"x": 1})
        assert cluster_mentions(client, addr)
        # Every key of the queue is in its slot: the scan goes to that primary alone.
        scanner = _scanner(client, keys)
        port = scanner.connection_pool.connection_kwargs["port"]
        assert port == cluster.primary_for(keys.base).port

        counts = forget(queue, addr)

        assert sum(counts.get(s, 0) for s in ("waiting", "delayed", "prioritized")) == 4
        assert counts["dead_letters"] == 1 and counts["events"] >= 4
        assert counts["counters"] == 2 and counts["busy"] == 0 and counts["suppressed"] == 1
        assert cluster_mentions(client, addr) == []
        assert cluster_mentions(client, address_digest(addr)) == [keys.suppressed]
        assert all(queue.get_job(job.id) is None for job in mine)
        # The other recipient's data is all still there.
        stored = queue.get_job(keep.id)
        assert stored is not None and stored.get_logs() == [f"delivered to {other}"]
        with Queue(dlq_name(name), connection=client) as dlq:
            assert dlq.get_job(dead.id) is None and dlq.get_job(dead_other.id) is not None
            dlq.obliterate(force=True)
        assert client.get(keys.soft_bounces(address_digest(other))) == b"2"
        assert client.zcard(keys.send_window("otp", address_digest(other))) == 1
        with Suppressions.of(queue) as supp:
            kept = supp.get(other)
            forgotten = supp.get(addr)
        assert kept is not None and kept["address"] == other
        assert forgotten is not None and forgotten["address"].startswith("sha256:")
        queue.obliterate(force=True)
