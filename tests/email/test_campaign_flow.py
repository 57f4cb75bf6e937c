"""``enqueue_batch(..., flow=True)``: a campaign parent job whose children are the
mails; the EmailWorker completes it once every mail is done, with a summary of
sent / suppressed / failed mails; idempotent, bounded when the enqueue dies."""

from __future__ import annotations

from typing import Any

import pytest
from _smtp import SMTPServer
from _worker_helpers import wait_for

from pyqueue import AsyncQueue, FlowProducer, JobStateError, Queue
from pyqueue.email import Suppressions, campaign_job_id, enqueue_batch
from pyqueue.email import campaign as C

FAST = {"attempts": 2, "backoff": {"type": "fixed", "delay": 0.01}}


async def finished(queue: Queue, job_id: str, timeout: float = 20) -> Any:
    async def done() -> bool:
        return queue.get_job_state(job_id) in ("completed", "failed")
    await wait_for(done, timeout, f"job {job_id} finished")
    job = queue.get_job(job_id)
    assert job is not None
    return job


async def test_campaign_flow_summarises_sent_suppressed_and_failed(
        queue: Queue, smtp_server: SMTPServer, started: Any) -> None:
    recipients = [f"user{i}@{('a', 'b', 'c')[i % 3]}.example.com" for i in range(10)]
    recipients += ["quiet@b.example.com", "gone@c.example.com"]
    Suppressions.of(queue).add("quiet@b.example.com", "unsubscribed")
    smtp_server.handler.fail_rcpt("gone@c.example.com", "550 5.1.1 user unknown")
    jobs = enqueue_batch(queue, recipients, campaign="autumn", subject="News", text="Hi",
                         flow=True, chunk=5, **FAST)
    parent_id = campaign_job_id("autumn")
    assert len(jobs) == 12 and all(j.parent == {"id": parent_id, "queue": queue.name}
                                   for j in jobs)
    assert jobs[0].group == "a.example.com"  # grouped by domain, inside the flow
    assert queue.get_job_state(parent_id) == "waiting-children"
    assert queue.get_job(f"{parent_id}-seal") is None  # removed once all were added
    parent = queue.get_job(parent_id)
    assert parent is not None and parent.get_dependencies_count()["unprocessed"] == 12
    # Enqueueing it again (a retry after a crash) adds nothing.
    again = enqueue_batch(queue, recipients, campaign="autumn", subject="News", text="Hi",
                          flow=True, **FAST)
    assert sorted(j.id for j in again) == sorted(j.id for j in jobs)
    assert parent.get_dependencies_count()["unprocessed"] == 12

    await started(concurrency=4)
    done = await finished(queue, parent_id)
    gone = next(j.id for j in jobs if j.data["to"] == ["gone@c.example.com"])
    assert done.return_value == {"campaign": "autumn", "sent": 10, "suppressed": 1,
                                 "dropped": 0, "failed": 1, "total": 12,
                                 "failed_jobs": [gone], "incomplete": False}
    assert "@" not in str(done.return_value)
    assert len(smtp_server.handler.messages) == 10
    with pytest.raises(JobStateError, match="already run"):
        enqueue_batch(queue, recipients, campaign="autumn", subject="News", text="Hi",
                      flow=True)


async def test_async_queue_campaign_flow(redis_url: str, queue: Queue,
                                         smtp_server: SMTPServer, started: Any) -> None:
    async with AsyncQueue(queue.name, connection=redis_url) as aqueue:
        jobs = await enqueue_batch(aqueue, ["a@example.com", "b@example.org"], campaign="c2",
                                   subject="x", text="x", flow=True)
        assert len(jobs) == 2
        assert await aqueue.get_job_state(campaign_job_id("c2")) == "waiting-children"
    await started()
    done = await finished(queue, campaign_job_id("c2"))
    assert done.return_value["sent"] == 2 and done.return_value["total"] == 2


async def test_an_enqueue_that_died_half_way_is_released_by_its_seal(
        redis_url: str, queue: Queue, smtp_server: SMTPServer, started: Any) -> None:
    entries = [[{"name": "send-email", "data": {"to": ["a@example.com"], "subject": "x",
                                                 "text": "x", "mail_uid": "half-1"},
                 "opts": {"job_id": "mail-half-1"}}]]
    with FlowProducer(connection=redis_url) as flows:  # what enqueue_flow does, without
        flows.add(C._parent_tree(queue.name, "half", 0.3))  # removing the seal
        flows.add_bulk(C._child_trees(queue.name, "half", entries[0]))
    await started()
    done = await finished(queue, campaign_job_id("half"))
    assert done.return_value["incomplete"] is True and done.return_value["sent"] == 1


def test_bad_flow_options_write_nothing(queue: Queue) -> None:
    with pytest.raises(ValueError, match="flow"):
        enqueue_batch(queue, ["a@example.com"], campaign="c3", subject="x", text="x",
                      flow="yes")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="seal_after"):
        enqueue_batch(queue, ["a@example.com"], campaign="c3", subject="x", text="x",
                      flow=True, seal_after=0)
    assert sum(queue.get_job_counts().values()) == 0
