"""Sending: message content, idempotent enqueue, connection reuse, TLS, AUTH."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from _smtp import SENDER, SMTPServer
from _worker_helpers import wait_for

from pyqueue import Queue
from pyqueue.email import EmailWorker, SMTPSettings, enqueue_email

PASSWORD = "s3cret-Pa55word-xyz"


async def finished(queue: Queue, job_id: str, timeout: float = 10.0) -> str:
    async def done() -> str | None:
        state = queue.get_job_state(job_id)
        return state if state in ("completed", "failed") else None
    result: str = await wait_for(done, timeout, f"job {job_id} to finish")
    return result


async def test_send_html_only_mail_with_everything(queue: Queue, smtp_server: SMTPServer,
                                                   started: Any) -> None:
    job = enqueue_email(
        queue, to=["Ada <ada@example.com>", "alan@example.com"], cc="grace@example.com",
        bcc="edsger@example.com", reply_to="help@app.example.com",
        subject="Welcome, Ada", html="<h1>Hi&nbsp;Ada</h1><p>Click <a href='https://x.example.com/a'>"
        "here</a></p>", headers={"X-Campaign": "spring"},
        attachments=[("notes.txt", b"hello file", "text/plain")], mail_uid="welcome-ada-1")
    assert job.id == "mail-welcome-ada-1"
    await started()
    assert await finished(queue, job.id) == "completed"
    (received,) = smtp_server.handler.messages
    assert received.mail_from == "noreply@app.example.com"
    assert sorted(received.rcpt_tos) == ["ada@example.com", "alan@example.com",
                                         "edsger@example.com", "grace@example.com"]
    msg = received.message
    assert "edsger" not in received.data.decode()  # Bcc is envelope-only
    assert msg["Message-ID"] == "<welcome-ada-1@app.example.com>"
    assert msg["Reply-To"] == "help@app.example.com"
    assert msg["X-Campaign"] == "spring"
    assert msg["Subject"] == "Welcome, Ada"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert "Click here (https://x.example.com/a)" in text.get_content()
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["notes.txt"]
    assert attachments[0].get_content() == "hello file"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.return_value["message_id"] == msg["Message-ID"]


async def test_enqueue_twice_sends_once(queue: Queue, smtp_server: SMTPServer,
                                        started: Any) -> None:
    first = enqueue_email(queue, to="ada@example.com", subject="Code", text="123456",
                          mail_uid="otp-7")
    again = enqueue_email(queue, to="ada@example.com", subject="Code", text="123456",
                          mail_uid="otp-7")
    assert first.id == again.id
    await started()
    await finished(queue, first.id)
    # Enqueuing after it was sent still adds nothing.
    enqueue_email(queue, to="ada@example.com", subject="Code", text="123456", mail_uid="otp-7")
    await wait_for(lambda: queue.get_job_counts("completed")["completed"] == 1)
    assert len(smtp_server.handler.messages) == 1
    assert smtp_server.handler.messages[0].message_id == "<otp-7@app.example.com>"


async def test_connection_is_reused_across_jobs(queue: Queue, smtp_server: SMTPServer,
                                                started: Any) -> None:
    for i in range(6):
        enqueue_email(queue, to=f"user{i}@example.com", subject=f"n{i}", text="x",
                      mail_uid=f"reuse-{i}")
    worker: EmailWorker = await started()
    await wait_for(lambda: len(smtp_server.handler.messages) == 6)
    assert worker.sender.connections_opened == 1
    assert smtp_server.handler.ehlo_count == 1


async def test_starttls_with_auth(servers: Any, queue: Queue, tls_cert: tuple[Path, Path],
                                  started: Any,
                                  caplog: pytest.LogCaptureFixture, sync_redis: Any) -> None:
    server = servers("starttls", cert=tls_cert, users={"app": PASSWORD})
    caplog.set_level(logging.DEBUG)
    settings = SMTPSettings.from_env({
        "SMTP_HOST": "localhost", "SMTP_PORT": str(server.port), "SMTP_USERNAME": "app",
        "SMTP_PASSWORD": PASSWORD, "SMTP_FROM": SENDER, "SMTP_CA_FILE": str(tls_cert[0])})
    assert settings.mode == "starttls"
    job = enqueue_email(queue, to="ada@example.com", subject="tls", text="secure",
                        mail_uid="tls-1")
    await started(smtp=settings)
    assert await finished(queue, job.id) == "completed"
    assert server.handler.auth_attempts == [("app", PASSWORD)]
    assert len(server.handler.messages) == 1
    # The password appears in no log line and no Redis value of the queue.
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(settings) and PASSWORD not in settings.describe()
    for key in sync_redis.scan_iter(match=f"bull:{queue.name}*"):
        if sync_redis.type(key) == "hash":
            assert PASSWORD not in str(sync_redis.hgetall(key))


async def test_implicit_tls_with_auth(servers: Any, queue: Queue, tls_cert: tuple[Path, Path],
                                      started: Any) -> None:
    server = servers("tls", cert=tls_cert, users={"app": PASSWORD})
    settings = SMTPSettings(host="localhost", port=server.port, tls=True, username="app",
                            password=PASSWORD, from_address=SENDER,
                            ca_file=str(tls_cert[0]), timeout=5)
    assert settings.mode == "tls"
    job = enqueue_email(queue, to="ada@example.com", subject="tls", text="secure",
                        mail_uid="tls-2")
    await started(smtp=settings)
    assert await finished(queue, job.id) == "completed"
    assert server.handler.auth_attempts == [("app", PASSWORD)]


async def test_certificate_is_verified_by_default(servers: Any, queue: Queue,
                                                  tls_cert: tuple[Path, Path],
                                                  started: Any) -> None:
    server = servers("starttls", cert=tls_cert)
    settings = SMTPSettings(host="localhost", port=server.port, from_address=SENDER,
                            timeout=5)  # no CA file: the self-signed cert is untrusted
    job = enqueue_email(queue, to="ada@example.com", subject="x", text="x",
                        mail_uid="untrusted", attempts=3)
    await started(smtp=settings)
    assert await finished(queue, job.id) == "failed"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1  # not retried
    assert "certificate" in (stored.failed_reason or "").lower()
    assert server.handler.messages == []


async def test_plain_smtp_never_sends_auth(servers: Any, queue: Queue, started: Any,
                                           caplog: pytest.LogCaptureFixture) -> None:
    server = servers("plain", advertise_auth_in_plain=True)
    settings = SMTPSettings.from_env({
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(server.port), "SMTP_STARTTLS": "false",
        "SMTP_TLS": "0", "SMTP_USERNAME": "app", "SMTP_PASSWORD": PASSWORD,
        "SMTP_FROM": SENDER})
    assert settings.mode == "plain" and not settings.sends_auth
    job = enqueue_email(queue, to="ada@example.com", subject="x", text="x",
                        mail_uid="plain-auth")
    await started(smtp=settings)
    assert await finished(queue, job.id) == "completed"
    assert server.handler.auth_attempts == []
    assert len(server.handler.messages) == 1
    assert "AUTH is never sent" in caplog.text
    assert PASSWORD not in caplog.text
