"""The SES v2 and Resend transports against local stand-in servers (_providers.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any

import pytest
from _providers import ACCESS_KEY, REGION, RESEND_KEY, SECRET_KEY, ResendServer, SESServer
from _worker_helpers import wait_for
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from pyqueue import Queue
from pyqueue.email import enqueue_email
from pyqueue.email.classify import FAIL, RETRY, THROTTLE
from pyqueue.email.resend import ResendSettings, ResendTransport
from pyqueue.email.ses import SESSettings, SESTransport
from pyqueue.email.sigv4 import Credentials, sign
from pyqueue.email.transport import ProviderError, Transport, transport_from_env
from pyqueue.errors import ConfigurationError

SENDER = "App <noreply@app.example.com>"


@pytest.fixture
def ses_server() -> Iterator[SESServer]:
    server = SESServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def resend_server() -> Iterator[ResendServer]:
    server = ResendServer()
    server.start()
    yield server
    server.stop()


def ses(server: SESServer, **overrides: Any) -> SESTransport:
    values: dict[str, Any] = {"region": REGION, "access_key_id": ACCESS_KEY,
                              "secret_access_key": SECRET_KEY, "endpoint": server.url,
                              "from_address": SENDER, "timeout": 5.0}
    values.update(overrides)
    return SESTransport(SESSettings(**values))


def resend(server: ResendServer, **overrides: Any) -> ResendTransport:
    values: dict[str, Any] = {"api_key": RESEND_KEY, "base_url": server.url,
                              "from_address": SENDER, "timeout": 5.0}
    values.update(overrides)
    return ResendTransport(ResendSettings(**values))


def message(to: str = "ada@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = to
    msg["Subject"] = "Hello"
    msg["Message-ID"] = "<m1@app.example.com>"
    msg.set_content("hi")
    return msg


async def state_of(queue: Queue, job_id: str, timeout: float = 10.0) -> str:
    def check() -> str | None:
        state = queue.get_job_state(job_id)
        return state if state in ("completed", "failed") else None
    result: str = await wait_for(check, timeout, f"job {job_id} to finish")
    return result


async def verdict_of(transport: Transport, msg: EmailMessage | None = None) -> Any:
    with pytest.raises(ProviderError) as info:
        await transport.send(msg or message(), "noreply@app.example.com",
                             ["ada@example.com"], mail_uid="u1")
    await transport.close()
    return info.value.verdict


# --- SigV4 -------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzEXAMPLETOKEN"])
def test_sigv4_signer_matches_botocore(token: str | None) -> None:
    url = "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails"
    body = b'{"FromEmailAddress": "a@b.example"}'
    now = datetime(2026, 1, 31, 12, 0, 5, tzinfo=timezone.utc)
    headers = sign("POST", url, body, credentials=Credentials(ACCESS_KEY, SECRET_KEY, token),
                   region=REGION, service="ses", now=now)
    request = AWSRequest(method="POST", url=url, data=body,
                         headers={k: v for k, v in headers.items() if k != "authorization"})
    request.context["timestamp"] = "20260131T120005Z"
    signer = SigV4Auth(BotoCredentials(ACCESS_KEY, SECRET_KEY, token), "ses", REGION)
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request)
    assert headers["authorization"].endswith(f"Signature={expected}")
    assert (token is not None) == ("x-amz-security-token" in headers)
    assert SECRET_KEY not in repr(Credentials(ACCESS_KEY, SECRET_KEY, token))


# --- SES -----------------------------------------------------------------------------

async def test_ses_sends_raw_mime_with_bcc_and_message_id(queue: Queue, ses_server: SESServer,
                                                          started: Any) -> None:
    job = enqueue_email(queue, to="Ada <ada@example.com>", bcc="boss@example.com",
                        subject="Your code", text="123456", html="<p>123456</p>",
                        attachments=[("a.txt", b"attached", "text/plain")], mail_uid="ses-1")
    await started(transport=ses(ses_server, configuration_set="transactional"))
    assert await state_of(queue, job.id) == "completed"
    (sent,) = ses_server.messages
    assert sent["to"] == ["ada@example.com", "boss@example.com"]
    assert sent["configuration_set"] == "transactional"
    mime = sent["message"]
    assert mime["Message-ID"] == "<ses-1@app.example.com>"
    assert "Bcc" not in mime and mime["To"] == "Ada <ada@example.com>"
    assert [p.get_filename() for p in mime.iter_attachments()] == ["a.txt"]
    stored = queue.get_job(job.id)
    assert stored is not None
    assert stored.return_value["transport"] == "ses"
    assert stored.return_value["provider_id"] == sent["id"]
    assert ses_server.signatures_checked >= 1


async def test_ses_signs_temporary_credentials(ses_server: SESServer) -> None:
    transport = ses(ses_server, session_token="FQoGZXIvYXdzEXAMPLETOKEN")
    result = await transport.send(message(), "noreply@app.example.com", ["ada@example.com"],
                                  mail_uid="u")
    await transport.close()
    assert result.provider_id == ses_server.messages[0]["id"]


async def test_ses_wrong_secret_is_refused_by_the_signature_check(ses_server: SESServer) -> None:
    verdict = await verdict_of(ses(ses_server, secret_access_key="not-the-secret"))
    assert verdict.kind == FAIL and verdict.code == 403
    assert "SignatureDoesNotMatch" in verdict.reason
    assert "not-the-secret" not in verdict.reason


@pytest.mark.parametrize(("status", "name", "kind", "quota"), [
    (429, "TooManyRequestsException", THROTTLE, False),
    (400, "LimitExceededException", THROTTLE, True),
    (400, "SendingPausedException", THROTTLE, True),
    (400, "MessageRejected", FAIL, False),
    (400, "MailFromDomainNotVerifiedException", FAIL, False),
    (500, "InternalFailure", RETRY, False),
    (503, "ServiceUnavailable", RETRY, False),
])
async def test_ses_error_mapping(ses_server: SESServer, status: int, name: str, kind: str,
                                 quota: bool) -> None:
    ses_server.fail(status, name, "Maximum sending rate exceeded." if kind == THROTTLE
                    else "Email address is not verified.")
    verdict = await verdict_of(ses(ses_server))
    assert (verdict.kind, verdict.code, verdict.quota) == (kind, status, quota)
    assert name in verdict.reason


async def test_ses_illegal_address_fails_at_once(queue: Queue, ses_server: SESServer,
                                                 started: Any) -> None:
    transport = ses(ses_server)
    with pytest.raises(ProviderError) as info:
        await transport.send(message(), "noreply@app.example.com", ["not-an-address"],
                             mail_uid="x")
    await transport.close()
    assert info.value.verdict.kind == FAIL and "Illegal address" in info.value.verdict.reason


async def test_ses_throttling_pauses_the_queue_without_an_attempt(
        queue: Queue, ses_server: SESServer, started: Any) -> None:
    ses_server.fail(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
    job = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="thr",
                        attempts=1)
    await started(transport=ses(ses_server), throttle_pause=0.3)
    assert await state_of(queue, job.id) == "completed"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1  # attempts=1, and still sent
    assert ses_server.requests == 2 and len(ses_server.messages) == 1


async def test_ses_permanent_4xx_fails_without_retry(queue: Queue, ses_server: SESServer,
                                                     started: Any) -> None:
    ses_server.fail(400, "MessageRejected", "Email address is not verified.", times=None)
    job = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="rej",
                        attempts=5, backoff={"type": "fixed", "delay": 0.05})
    await started(transport=ses(ses_server))
    assert await state_of(queue, job.id) == "failed"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 1
    assert stored.failed_reason == "400 MessageRejected: Email address is not verified."
    assert ses_server.requests == 1


async def test_ses_5xx_and_timeouts_retry(queue: Queue, ses_server: SESServer,
                                          started: Any) -> None:
    ses_server.fail(500, "InternalFailure", "oops")
    ses_server.fail(200, "-", "-", delay=1.5)  # answers after the client gave up
    job = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="5xx",
                        attempts=5, backoff={"type": "fixed", "delay": 0.05})
    await started(transport=ses(ses_server, timeout=0.5))
    assert await state_of(queue, job.id) == "completed"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.attempts_made == 3
    assert len(ses_server.messages) == 1


# --- Resend ----------------------------------------------------------------------------

async def test_resend_sends_fields_with_an_idempotency_key(queue: Queue,
                                                           resend_server: ResendServer,
                                                           started: Any) -> None:
    job = enqueue_email(queue, to="Ada <ada@example.com>", cc="carl@example.com",
                        bcc="boss@example.com", reply_to="help@app.example.com",
                        subject="Your code", text="123456", html="<p>123456</p>",
                        headers={"X-Campaign": "otp"},
                        attachments=[("a.txt", b"attached", "text/plain")], mail_uid="rs-1")
    await started(transport=resend(resend_server))
    assert await state_of(queue, job.id) == "completed"
    (sent,) = resend_server.messages
    request = sent["request"]
    assert request["from"] == SENDER and request["to"] == ["ada@example.com"]
    assert request["cc"] == ["carl@example.com"] and request["bcc"] == ["boss@example.com"]
    assert request["reply_to"] == ["help@app.example.com"]
    assert request["subject"] == "Your code"
    assert request["text"].strip() == "123456" and request["html"].strip() == "<p>123456</p>"
    assert request["headers"]["Message-ID"] == "<rs-1@app.example.com>"
    assert request["headers"]["X-Campaign"] == "otp"
    assert request["attachments"] == [{"filename": "a.txt", "content": "YXR0YWNoZWQ="}]
    assert sent["idempotency_key"] == "pyqueue-rs-1"
    stored = queue.get_job(job.id)
    assert stored is not None and stored.return_value["provider_id"] == sent["id"]


async def test_resend_idempotency_key_sends_once(resend_server: ResendServer) -> None:
    transport = resend(resend_server)
    msg = message()
    first = await transport.send(msg, "noreply@app.example.com", ["ada@example.com"],
                                 mail_uid="once")
    again = await transport.send(msg, "noreply@app.example.com", ["ada@example.com"],
                                 mail_uid="once")
    other = message("alan@example.com")
    with pytest.raises(ProviderError) as info:  # same key, other mail: Resend refuses
        await transport.send(other, "noreply@app.example.com", ["alan@example.com"],
                             mail_uid="once")
    await transport.close()
    assert first.provider_id == again.provider_id and len(resend_server.messages) == 1
    assert info.value.verdict.kind == FAIL and info.value.verdict.code == 409


@pytest.mark.parametrize(("status", "name", "kind", "quota"), [
    (429, "rate_limit_exceeded", THROTTLE, False),
    (429, "daily_quota_exceeded", THROTTLE, True),
    (429, "monthly_quota_exceeded", THROTTLE, True),
    (409, "concurrent_idempotent_requests", RETRY, False),
    (422, "validation_error", FAIL, False),
    (422, "invalid_from_address", FAIL, False),
    (500, "internal_server_error", RETRY, False),
])
async def test_resend_error_mapping(resend_server: ResendServer, status: int, name: str,
                                    kind: str, quota: bool) -> None:
    resend_server.fail(status, name, "something", headers={"retry-after": "2"})
    verdict = await verdict_of(resend(resend_server))
    assert (verdict.kind, verdict.code, verdict.quota) == (kind, status, quota)
    if kind == THROTTLE:
        assert verdict.retry_after == 2.0


async def test_resend_bad_key_and_bad_address_fail(resend_server: ResendServer) -> None:
    verdict = await verdict_of(resend(resend_server, api_key="re_wrong_key"))
    assert (verdict.kind, verdict.code) == (FAIL, 403)
    assert "re_wrong_key" not in verdict.reason
    verdict = await verdict_of(resend(resend_server), message("nobody"))
    assert (verdict.kind, verdict.code) == (FAIL, 422)


async def test_resend_rate_limit_waits_retry_after(queue: Queue, resend_server: ResendServer,
                                                   started: Any, sync_redis: Any) -> None:
    resend_server.fail(429, "rate_limit_exceeded", "Too many requests",
                       headers={"retry-after": "1"})
    job = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="rl",
                        attempts=1)
    await started(transport=resend(resend_server), throttle_pause=30)
    await wait_for(lambda: sync_redis.pttl(f"bull:{queue.name}:limiter") > 0, 5,
                   "the queue to pause")
    assert 0 < sync_redis.pttl(f"bull:{queue.name}:limiter") <= 1000  # Retry-After, not 30 s
    assert await state_of(queue, job.id) == "completed"
    assert len(resend_server.messages) == 1


# --- choosing a transport, secrets ------------------------------------------------------

def test_transport_from_env() -> None:
    env = {"EMAIL_TRANSPORT": "ses", "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_ENDPOINT_URL_SESV2": "http://127.0.0.1:9"}
    chosen = transport_from_env(environ=env)
    assert isinstance(chosen, SESTransport)
    assert chosen.settings.url == "http://127.0.0.1:9/v2/email/outbound-emails"
    assert SECRET_KEY not in repr(chosen.settings) and SECRET_KEY not in chosen.describe()
    chosen = transport_from_env("resend", environ={"RESEND_API_KEY": RESEND_KEY})
    assert isinstance(chosen, ResendTransport) and RESEND_KEY not in repr(chosen.settings)
    assert transport_from_env(environ={}).name == "smtp"
    with pytest.raises(ConfigurationError, match="EMAIL_TRANSPORT"):
        transport_from_env(environ={"EMAIL_TRANSPORT": "pigeon"})
    with pytest.raises(ConfigurationError, match="RESEND_API_KEY"):
        transport_from_env("resend", environ={})
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        transport_from_env("ses", environ={"AWS_ACCESS_KEY_ID": "x"})


async def test_secrets_stay_out_of_logs(queue: Queue, ses_server: SESServer,
                                        resend_server: ResendServer, started: Any,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ses_server.fail(400, "MessageRejected", "nope")
    resend_server.fail(422, "validation_error", "nope")
    one = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="s1",
                        attempts=1)
    first = await started(transport=ses(ses_server, session_token="TOKEN-SECRET-123"))
    assert await state_of(queue, one.id) == "failed"
    await first.close()
    two = enqueue_email(queue, to="ada@example.com", subject="x", text="x", mail_uid="s2",
                        attempts=1)
    await started(transport=resend(resend_server))
    assert await state_of(queue, two.id) == "failed"
    text = caplog.text
    for secret in (SECRET_KEY, "TOKEN-SECRET-123", RESEND_KEY):
        assert secret not in text
        for job_id in (one.id, two.id):
            stored = queue.get_job(job_id)
            assert stored is not None and secret not in str(stored.failed_reason)
