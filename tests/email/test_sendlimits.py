"""Per-recipient, per-user and per-type sliding-window limits (lua/checkSendLimits.lua)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
import redis.asyncio
from _smtp import SMTPServer
from _worker_helpers import wait_for

from pyqueue import Queue
from pyqueue._clock import Clock
from pyqueue._keys import QueueKeys
from pyqueue.email import SendLimit, enqueue_email
from pyqueue.email.sendlimits import SendLimits
from pyqueue.email.suppressions import address_digest

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


@pytest.fixture
async def aclient(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def limits(client: redis.asyncio.Redis, queue_name: str, *rules: SendLimit,
           at: int = T0) -> SendLimits:
    return SendLimits(client, QueueKeys("bull", queue_name), rules, clock=Clock(fixed_ms=at))


async def test_sliding_window_takes_frees_and_says_how_long(
        aclient: redis.asyncio.Redis, queue: Queue) -> None:
    rule = SendLimit("otp-addr", 3, 600, types=("otp",))
    lim = limits(aclient, queue.name, rule)
    otp: Any = {"type": "otp"}
    for i in range(3):
        lim.clock.fixed_ms = T0 + i * 1000
        assert await lim.take(f"j{i}", otp, ["ada@example.com"]) is None
    lim.clock.fixed_ms = T0 + 5000
    over = await lim.take("j3", otp, ["ada@example.com"])
    assert over is not None and over.rule == rule and over.wait_ms == 600_000 - 5000
    # Other addresses, other types and untyped mail are not limited by this rule.
    assert await lim.take("j4", otp, ["bob@example.com"]) is None
    assert await lim.take("j5", {"type": "welcome"}, ["ada@example.com"]) is None
    # The first slot frees exactly one window after it was taken: sliding, not fixed.
    lim.clock.fixed_ms = T0 + 600_000
    assert await lim.take("j6", otp, ["ada@example.com"]) is None
    assert await lim.take("j7", otp, ["ada@example.com"]) is not None
    key = QueueKeys("bull", queue.name).send_window("otp-addr", address_digest("ada@example.com"))
    assert await aclient.zcard(key) == 3  # expired members trimmed
    assert 0 < await aclient.pttl(key) <= 600_000
    assert b"ada@example.com" not in key.encode()


async def test_all_windows_or_none(aclient: redis.asyncio.Redis, queue: Queue) -> None:
    per_user = SendLimit("user", 1, 60, per="user")
    total = SendLimit("register", 2, 1, per="global", types=("register-otp",))
    lim = limits(aclient, queue.name, per_user, total)
    data: Any = {"type": "register-otp", "user_id": "u1"}
    assert await lim.take("a", data, ["a@example.com"]) is None
    over = await lim.take("b", data, ["b@example.com"])  # the user's window is full
    assert over is not None and over.rule == per_user
    other: Any = {"type": "register-otp", "user_id": "u2"}
    assert await lim.take("c", other, ["c@example.com"]) is None  # u1's refusal took nothing
    over = await lim.take("d", {"type": "register-otp", "user_id": "u3"}, ["d@example.com"])
    assert over is not None and over.rule == total and over.wait_ms == 1000
    keys = QueueKeys("bull", queue.name)
    assert await aclient.zcard(keys.send_window("user", address_digest("user:u3"))) == 0


async def test_concurrent_takes_never_overshoot(redis_url: str, queue: Queue) -> None:
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(4)]
    rule = SendLimit("burst", 10, 60, per="global")
    lims = [SendLimits(c, QueueKeys("bull", queue.name), [rule]) for c in clients]
    results = await asyncio.gather(*(lims[i % 4].take(f"j{i}", {}, ["x@example.com"])
                                     for i in range(60)))
    for client in clients:
        await client.aclose()
    assert sum(r is None for r in results) == 10


def test_bad_rules_are_refused() -> None:
    for kwargs in ({"name": "a b", "limit": 1, "window": 1}, {"name": "a", "limit": 0, "window": 1},
                   {"name": "a", "limit": 1, "window": 0},
                   {"name": "a", "limit": 1, "window": 1, "per": "domain"},
                   {"name": "a", "limit": 1, "window": 1, "on_limit": "fail"}):
        with pytest.raises(ValueError):
            SendLimit(**kwargs)


async def test_worker_delays_over_limit_mail_without_polling(
        queue: Queue, smtp_server: SMTPServer, started: Any, sync_redis: Any) -> None:
    jobs = [enqueue_email(queue, to="ada@example.com", subject="x", text="x",
                          mail_uid=f"lim{i}", mail_type="otp") for i in range(5)]
    other = enqueue_email(queue, to="bob@example.com", subject="x", text="x", mail_uid="limb",
                          mail_type="otp")
    await started(limits=[SendLimit("otp", 2, 1.0, types=("otp",))], concurrency=4)

    def finished() -> bool:
        return all(queue.get_job_state(j.id) == "completed" for j in [*jobs, other])
    await wait_for(finished, 15, "every mail sent")
    sent = sorted(datetime.fromisoformat(queue.get_job(j.id).return_value["sent_at"])
                  for j in jobs)
    for first, third in zip(sent, sent[2:], strict=False):
        assert (third - first).total_seconds() >= 0.95  # never 3 within one second
    assert len(smtp_server.handler.messages) == 6
    delays = [e for _, e in sync_redis.xrange(f"bull:{queue.name}:events")
              if e.get("event") == "delayed"]
    assert 3 <= len(delays) <= 10  # parked until the window frees, not re-tried in a loop


async def test_worker_drops_with_a_reason(queue: Queue, smtp_server: SMTPServer,
                                          started: Any) -> None:
    first = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="d1",
                          user_id="42")
    second = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="d2",
                           user_id="42")
    await started(limits=[SendLimit("per-user", 1, 3600, per="user", on_limit="drop")])

    def done() -> bool:
        return all(queue.get_job_state(j.id) == "completed" for j in (first, second))
    await wait_for(done, 10, "both finished")
    results = sorted((queue.get_job(j.id).return_value for j in (first, second)),
                     key=lambda r: r["status"])
    assert [r["status"] for r in results] == ["dropped", "sent"]
    assert "over limit 'per-user'" in results[0]["reason"]
    assert len(smtp_server.handler.messages) == 1
