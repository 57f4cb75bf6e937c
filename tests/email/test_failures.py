"""Failures: retries, permanent failures, bounces, throttling, quota, dead letters."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from _smtp import SENDER, SMTPServer, free_port
from _worker_helpers import wait_for

from pyqueue import Queue
from pyqueue import _scripts as S
from pyqueue._keys import QueueKeys
from pyqueue._plan import single
from pyqueue._runner import run_sync
from pyqueue.email import DeadLetters, SMTPSettings, Suppressions, enqueue_email

FAST_RETRY: dict[str, Any] = {"attempts": 4,
                              "backoff": {"type": "exponential", "delay": 0.05, "jitter": 0.5}}


async def state_of(queue: Queue, job_id: str, *states: str, timeout: float = 10.0) -> str:
    wanted = states or ("completed", "failed")

    def check() -> str | None:
        state = queue.get_job_state(job_id)
        return state if state in wanted else None
    result: str = await wait_for(check, timeout, f"job {job_id} in {wanted}")
    return result


async def test_4xx_is_retried_with_backoff(queue: Queue, smtp_server: SMTPServer,
                                           started: Any) -> None:
    smtp_server.handler.fail_data("451 4.3.0 Temporary local problem", times=2)
    job = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="t4xx",
                        **FAST_RETRY)
    await started()
    assert await state_of(queue, job.id) == "completed"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 3
    assert stored.failed_reason == "451 4.3.0 Temporary local problem"
    assert len(smtp_server.handler.messages) == 1
    with DeadLetters.of(queue) as dead:
        assert dead.count() == 0


async def test_connection_errors_retry_then_dead_letter(queue: Queue, started: Any) -> None:
    closed = SMTPSettings(host="127.0.0.1", port=free_port(), starttls=False,
                          from_address=SENDER, timeout=2)
    job = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="refused",
                        attempts=2, backoff={"type": "exponential", "delay": 0.05,
                                             "jitter": 0.5})
    await started(smtp=closed)
    assert await state_of(queue, job.id) == "failed"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 2
    with DeadLetters.of(queue) as dead:
        (entry,) = dead.list()
    assert entry["job_id"] == job.id and entry["kind"] == "retry-exhausted"
    assert "connection problem" in entry["reason"]


async def test_5xx_fails_at_once_into_the_dead_letter_queue(request: pytest.FixtureRequest,
                                                            queue: Queue,
                                                            smtp_server: SMTPServer,
                                                            started: Any) -> None:
    smtp_server.handler.fail_data("554 5.7.1 Message rejected by policy", times=None)
    job = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="policy",
                        **FAST_RETRY)
    await started()
    assert await state_of(queue, job.id) == "failed"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1
    dead = DeadLetters.of(queue)
    request.addfinalizer(dead.close)
    (entry,) = dead.list()
    assert entry["reason"] == "554 5.7.1 Message rejected by policy"
    assert entry["kind"] == "fail" and entry["data"]["mail_uid"] == "policy"
    assert queue.get_dead_letter_queue() == f"{queue.name}-dlq"  # set by the worker
    # After the fix, replay sends it, with the same Message-ID.
    smtp_server.handler.clear_rules()
    (new_id,) = dead.replay()
    assert new_id == f"{job.id}-r1"
    assert await state_of(queue, new_id) == "completed"
    assert dead.count() == 0
    (received,) = smtp_server.handler.messages
    assert received.message_id == "<policy@app.example.com>"


async def test_hard_bounce_suppresses_the_address(queue: Queue, smtp_server: SMTPServer,
                                                  started: Any) -> None:
    smtp_server.handler.fail_rcpt("gone@example.com", "550 5.1.1 <gone@example.com>: "
                                  "user unknown")
    job = enqueue_email(queue, to="gone@example.com", subject="x", text="x", mail_uid="b1",
                        **FAST_RETRY)
    await started()
    assert await state_of(queue, job.id) == "failed"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1
    supp = Suppressions.of(queue)
    entry = supp.get("Gone@Example.com")
    assert entry is not None and "5.1.1" in entry["reason"]
    # The next mail to it is skipped, not sent; others still go out.
    smtp_server.handler.clear_rules()
    skipped = enqueue_email(queue, to="gone@example.com", subject="y", text="y", mail_uid="b2")
    mixed = enqueue_email(queue, to=["gone@example.com", "ada@example.com"], subject="z",
                          text="z", mail_uid="b3")
    assert await state_of(queue, skipped.id) == "completed"
    assert await state_of(queue, mixed.id) == "completed"
    result = queue.get_job(skipped.id)
    assert result is not None and result.return_value["status"] == "suppressed"
    (received,) = smtp_server.handler.messages
    assert received.rcpt_tos == ["ada@example.com"]


async def test_partial_bounce_sends_to_the_rest(queue: Queue, smtp_server: SMTPServer,
                                                started: Any) -> None:
    smtp_server.handler.fail_rcpt("gone@example.com", "550 5.1.1 user unknown")
    job = enqueue_email(queue, to=["ada@example.com", "gone@example.com"], subject="x",
                        text="x", mail_uid="pb")
    await started()
    assert await state_of(queue, job.id) == "completed"
    stored = queue.get_job(job.id)
    assert stored is not None
    assert stored.return_value["accepted"] == ["ada@example.com"]
    assert "gone@example.com" in stored.return_value["refused"]
    assert Suppressions.of(queue).is_suppressed("gone@example.com")


@pytest.mark.parametrize("reply", [
    "421 4.7.28 Our system has detected an unusual rate of unsolicited mail",
    "451 4.7.1 Too many messages, slow down",
    "454 Throttling failure: Maximum sending rate exceeded.",
])
async def test_throttling_pauses_the_queue_without_using_attempts(
        queue: Queue, smtp_server: SMTPServer, started: Any, sync_redis: Any,
        reply: str) -> None:
    smtp_server.handler.fail_data(reply, times=1)
    job = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="thr",
                        attempts=1)
    other = enqueue_email(queue, to="alan@example.com", subject="x", text="x", mail_uid="thr2",
                          attempts=1)
    await started(throttle_pause=1.0)
    await wait_for(lambda: sync_redis.pttl(f"bull:{queue.name}:limiter") > 0, 5,
                   "the queue to pause")
    paused_at = time.monotonic()
    assert await state_of(queue, job.id) == "completed"
    assert await state_of(queue, other.id) == "completed"
    assert time.monotonic() - paused_at > 0.5  # nothing was sent during the pause
    stored = queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1  # attempts=1 and still sent
    assert len(smtp_server.handler.messages) == 2


async def test_daily_quota_delays_to_next_utc_midnight(queue: Queue, smtp_server: SMTPServer,
                                                       started: Any) -> None:
    jobs = [enqueue_email(queue, to=f"u{i}@example.com", subject="x", text="x",
                          mail_uid=f"q{i}") for i in range(3)]
    await started(daily_quota=2, quota_jitter=60)
    await wait_for(lambda: len(smtp_server.handler.messages) == 2)
    delayed = [j for j in jobs if await state_of(queue, j.id, "completed", "delayed")
               == "delayed"]
    assert len(delayed) == 1
    stored = queue.get_job(delayed[0].id)
    assert stored is not None and stored.attempts_made == 0
    assert stored.timestamp is not None
    due = stored.timestamp + timedelta(seconds=stored.delay)
    midnight = (datetime.now(timezone.utc) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0)
    assert midnight <= due <= midnight + timedelta(seconds=61)
    assert queue.get_job_counts("failed")["failed"] == 0


async def test_transactional_mail_goes_before_bulk(queue: Queue, smtp_server: SMTPServer,
                                                   started: Any) -> None:
    for i in range(5):
        enqueue_email(queue, to=f"reader{i}@example.com", subject=f"news {i}", text="x",
                      mail_uid=f"news-{i}", category="bulk")
    enqueue_email(queue, to="ada@example.com", subject="Your code", text="123456",
                  mail_uid="otp-1")
    await started()
    await wait_for(lambda: len(smtp_server.handler.messages) == 6)
    assert smtp_server.handler.messages[0].subject == "Your code"


async def test_per_domain_group_limit(queue: Queue, smtp_server: SMTPServer,
                                      started: Any) -> None:
    queue.set_group_rate_limit(1, 1, group="slow.example.com")
    for i in range(3):
        enqueue_email(queue, to=f"s{i}@slow.example.com", subject="s", text="x",
                      mail_uid=f"slow-{i}", group_by_domain=True)
    for i in range(5):
        enqueue_email(queue, to=f"f{i}@fast.example.com", subject="f", text="x",
                      mail_uid=f"fast-{i}", group_by_domain=True)
    await started(concurrency=4)
    await wait_for(lambda: len(smtp_server.handler.messages) == 8, 10)
    slow = [m.at for m in smtp_server.handler.messages if m.subject == "s"]
    fast = [m.at for m in smtp_server.handler.messages if m.subject == "f"]
    assert max(fast) < max(slow)
    assert slow[2] - slow[0] >= 1.5  # 1 per second for the slow domain


async def test_template_rendering_and_strict_undefined(queue: Queue, smtp_server: SMTPServer,
                                                       started: Any) -> None:
    templates = {"otp": {"subject": "Your code is {{ code }}",
                         "html": "<p>Hello {{ name }}, your code is <b>{{ code }}</b></p>"}}
    good = enqueue_email(queue, to="ada@example.com", template="otp",
                         variables={"code": "123456", "name": "<Ada & co>"}, mail_uid="tpl1")
    bad = enqueue_email(queue, to="ada@example.com", template="otp",
                        variables={"code": "1"}, mail_uid="tpl2", attempts=3)
    await started(templates=templates)
    assert await state_of(queue, good.id) == "completed"
    assert await state_of(queue, bad.id) == "failed"
    (received,) = smtp_server.handler.messages
    msg = received.message
    assert msg["Subject"] == "Your code is 123456"
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert html is not None and "&lt;Ada &amp; co&gt;" in html.get_content()
    assert text is not None and "Hello <Ada & co>, your code is 123456" in text.get_content()
    failed = queue.get_job(bad.id)
    assert failed is not None and failed.attempts_made == 1
    assert "name" in (failed.failed_reason or "")


async def test_bad_job_data_from_another_producer_fails_without_retry(
        queue: Queue, smtp_server: SMTPServer, started: Any) -> None:
    job = queue.add("email", {"to": "a@example.com, b@example.com", "text": "x"}, attempts=3)
    await started()
    assert await state_of(queue, job.id) == "failed"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1
    assert "2 recipients" in (stored.failed_reason or "")
    assert smtp_server.handler.messages == []


async def test_a_mail_failed_by_the_stalled_check_is_dead_lettered(
        queue: Queue, started: Any, redis_url: str) -> None:
    # Before the dead letters moved into the failing script, a mail failed by
    # the stalled check skipped the dead-letter queue (process() never ran).
    job = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="stall")
    keys = QueueKeys(queue.prefix, queue.name)
    # A worker takes the mail (the real fetch script, a 50 ms lock) and dies.
    fetch = S.fetch_args(token="dead-worker", lock_ms=50, n=1, wname=None, me=None,
                         limiter=None)
    run_sync(queue.client, single(S.move_to_active(keys, int(time.time() * 1000), fetch)))
    assert queue.get_job_state(job.id) == "active"
    await wait_for(lambda: not queue.client.exists(keys.lock(job.id)), 5, "lock expiry")
    for interval in (1, 2):  # the stalled check's two passes (mark, then move)
        run_sync(queue.client, single(S.move_stalled_jobs_to_wait(
            keys, int(time.time() * 1000) + interval, max_stalled=0, interval_ms=1)))
        queue.client.delete(keys.key("stalled-check"))
    assert queue.get_job_state(job.id) == "prioritized"  # back, ready (mail has priority)
    await started()
    assert await state_of(queue, job.id) == "failed"
    with DeadLetters.of(queue) as dead:
        (entry,) = dead.list()
    assert entry["job_id"] == job.id and entry["kind"] == "stalled"
    assert entry["reason"] == "job stalled more than allowable limit"


async def test_the_worker_keeps_a_dead_letter_queue_set_by_hand(
        queue: Queue, smtp_server: SMTPServer, started: Any) -> None:
    queue.set_dead_letter_queue(f"{queue.name}-mine")
    try:
        smtp_server.handler.fail_data("554 5.7.1 rejected", times=None)
        job = enqueue_email(queue, to="ada@example.com", subject="x", text="x",
                            mail_uid="mine")
        await started()
        assert queue.get_dead_letter_queue() == f"{queue.name}-mine"
        assert await state_of(queue, job.id) == "failed"
        with DeadLetters.of(queue) as dead:
            (entry,) = dead.list()
        assert entry["job_id"] == job.id
        with Queue(f"{queue.name}-mine", connection=queue.client) as mine:
            assert mine.get_job_counts("waiting")["waiting"] == 1
            mine.obliterate(force=True)
    finally:
        queue.set_dead_letter_queue(None)
