"""``enqueue_batch``: a campaign as one job per recipient, grouped by domain, idempotent."""

from __future__ import annotations

from typing import Any

import pytest
from _smtp import SMTPServer
from _worker_helpers import wait_for

from pyqueue import AsyncQueue, Queue
from pyqueue.email import PRIORITY_BULK, enqueue_batch


async def test_a_campaign_is_sent_once_per_recipient(queue: Queue, smtp_server: SMTPServer,
                                                     started: Any) -> None:
    recipients: list[Any] = [f"user{i}@{('a', 'b', 'c')[i % 3]}.example.com"
                             for i in range(60)]
    recipients.append({"to": "Vip <VIP@a.example.com>", "variables": {"name": "Vera"}})
    recipients.append("user0@a.example.com")  # listed twice: mailed once
    jobs = enqueue_batch(queue, recipients, campaign="spring-2026", template="news",
                         variables={"name": "friend"}, chunk=25)
    assert len(jobs) == 61
    first = queue.get_job(jobs[0].id)
    assert first is not None and first.group == "a.example.com"
    assert first.priority == PRIORITY_BULK
    assert "user0" not in first.id and first.data["mail_uid"].startswith("spring-2026-")
    # Enqueueing the campaign again adds nothing new.
    again = enqueue_batch(queue, recipients, campaign="spring-2026", template="news",
                          variables={"name": "friend"})
    assert sorted(j.id for j in again) == sorted(j.id for j in jobs)
    await started(templates={"news": {"subject": "Hello {{ name }}", "text": "Hi {{ name }}"}},
                  concurrency=10)
    await wait_for(lambda: len(smtp_server.handler.messages) == 61, 20, "61 mails")
    vip = smtp_server.handler.by_rcpt("vip@a.example.com")
    assert [m.subject for m in vip] == ["Hello Vera"]
    assert [m.subject for m in smtp_server.handler.by_rcpt("user1@b.example.com")] == \
        ["Hello friend"]


def test_a_bad_recipient_writes_nothing(queue: Queue) -> None:
    with pytest.raises(ValueError, match="recipient 2"):
        enqueue_batch(queue, ["a@example.com", "b@example.com", "not an address"],
                      campaign="c1", subject="x", text="x")
    with pytest.raises(ValueError, match="campaign"):
        enqueue_batch(queue, ["a@example.com"], campaign="bad campaign", subject="x", text="x")
    with pytest.raises(ValueError, match="recipient 0"):
        enqueue_batch(queue, ["a@example.com, b@example.com"], campaign="c1", subject="x",
                      text="x")
    assert sum(queue.get_job_counts().values()) == 0


async def test_async_queue(redis_url: str, queue: Queue) -> None:
    async with AsyncQueue(queue.name, connection=redis_url) as aqueue:
        jobs = await enqueue_batch(aqueue, ["a@example.com", "b@example.org"], campaign="c2",
                                   subject="x", text="x", group_by_domain=False,
                                   category="transactional")
    assert len(jobs) == 2 and all(j.group is None for j in jobs)
