"""The feedback endpoint: SES notices through SNS (signatures made with a
test CA's keys, certificates served over real HTTPS) and Resend webhooks
(Svix-style signatures made in the test)."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from _pki import PKI, CertServer, make_pki, sign_sns

from pyqueue import Queue
from pyqueue.email import Suppressions
from pyqueue.email.feedback import create_feedback_app
from pyqueue.email.webhook import signature_for, webhook_key
from pyqueue.errors import ConfigurationError

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def cert_server(pki: PKI) -> Iterator[CertServer]:
    server = CertServer(pki).start()
    yield server
    server.stop()


@pytest.fixture
async def client(redis_url: str, queue: Queue, pki: PKI,
                 cert_server: CertServer) -> AsyncIterator[httpx.AsyncClient]:
    app = create_feedback_app(queue.name, connection=redis_url, sns_topic_arns=[TOPIC],
                              resend_secret=SECRET, soft_bounce_threshold=3,
                              sns_host_pattern=r"^localhost$",
                              tls_verify=pki.client_context())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://feedback.test") as http:
        yield http
    await app.state.close()


def now_iso(delta: float = 0) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=delta)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def sns(pki: PKI, server: CertServer, notice: dict[str, Any] | None = None, *,
        kind: str = "Notification", version: str = "1", topic: str = TOPIC,
        cert_url: str | None = None, timestamp: str | None = None,
        key: Any = None, message_id: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "Type": kind, "MessageId": message_id or str(uuid.uuid4()), "TopicArn": topic,
        "Message": json.dumps(notice or {}), "Timestamp": timestamp or now_iso(),
        "SigningCertURL": cert_url or server.cert_url}
    if kind == "SubscriptionConfirmation":
        message["Token"] = "tok-" + uuid.uuid4().hex
        message["SubscribeURL"] = f"{server.base}/confirm?Action=ConfirmSubscription&" \
                                  f"Token={message['Token']}"
    sign_sns(message, key or pki.signing_key, version)
    return message


def bounce(kind: str, *addresses: str) -> dict[str, Any]:
    return {"notificationType": "Bounce",
            "bounce": {"bounceType": kind, "bounceSubType": "General",
                       "bouncedRecipients": [{"emailAddress": a} for a in addresses]},
            "mail": {"messageId": "0100abc"}}


def complaint(*addresses: str) -> dict[str, Any]:
    return {"notificationType": "Complaint",
            "complaint": {"complaintFeedbackType": "abuse",
                          "complainedRecipients": [{"emailAddress": a} for a in addresses]}}


def resend_headers(body: bytes, *, msg_id: str | None = None, stamp: float | None = None,
                   secret: str = SECRET) -> dict[str, str]:
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    stamp_text = str(int(time.time() if stamp is None else stamp))
    sig = signature_for(webhook_key(secret), msg_id, stamp_text, body)
    return {"svix-id": msg_id, "svix-timestamp": stamp_text, "svix-signature": f"v1,{sig}",
            "content-type": "application/json"}


def resend_event(kind: str, to: str, bounce_type: str | None = None) -> bytes:
    data: dict[str, Any] = {"email_id": str(uuid.uuid4()), "from": "noreply@app.example.com",
                            "to": [to], "subject": "x"}
    if bounce_type:
        data["bounce"] = {"type": bounce_type, "subType": "General", "message": "no"}
    return json.dumps({"type": kind, "created_at": now_iso(), "data": data}).encode()


def suppressed(queue: Queue, address: str) -> dict[str, Any] | None:
    with Suppressions.of(queue) as supp:
        return supp.get(address)


# --- SES through SNS -------------------------------------------------------------------

async def test_hard_bounce_and_complaint_suppress(client: httpx.AsyncClient, queue: Queue,
                                                  pki: PKI, cert_server: CertServer) -> None:
    reply = await client.post("/ses", json=sns(pki, cert_server,
                                               bounce("Permanent", "Ada@Example.com")))
    assert reply.status_code == 200 and reply.json()["hard"] == ["ada@example.com"]
    entry = suppressed(queue, "ada@example.com")
    assert entry is not None and entry["source"] == "ses" and "Permanent" in entry["reason"]
    assert entry["at"] > time.time() - 60
    reply = await client.post("/ses", json=sns(pki, cert_server, complaint("bob@example.com"),
                                               version="2"))
    assert reply.status_code == 200
    entry = suppressed(queue, "bob@example.com")
    assert entry is not None and entry["reason"] == "complaint (ses): abuse"
    assert cert_server.cert_fetches == 1  # cached


async def test_soft_bounces_count_to_the_threshold(client: httpx.AsyncClient, queue: Queue,
                                                   pki: PKI, cert_server: CertServer) -> None:
    first = sns(pki, cert_server, bounce("Transient", "carl@example.com"))
    for _ in range(2):  # the same notice twice (an SNS retry) counts once
        assert (await client.post("/ses", json=first)).status_code == 200
    assert (await client.post("/ses", json=first)).json()["status"] == "duplicate"
    reply = await client.post("/ses", json=sns(pki, cert_server,
                                               bounce("Undetermined", "carl@example.com")))
    assert reply.json()["suppressed"] == [] and suppressed(queue, "carl@example.com") is None
    reply = await client.post("/ses", json=sns(pki, cert_server,
                                               bounce("Transient", "carl@example.com")))
    assert reply.json()["suppressed"] == ["carl@example.com"]
    entry = suppressed(queue, "carl@example.com")
    assert entry is not None and entry["reason"].startswith("3 soft bounces")


async def test_subscription_confirmation_is_confirmed(client: httpx.AsyncClient, pki: PKI,
                                                      cert_server: CertServer) -> None:
    message = sns(pki, cert_server, kind="SubscriptionConfirmation")
    reply = await client.post("/ses", json=message)
    assert reply.json() == {"status": "subscribed"}
    assert cert_server.confirmed == [message["Token"]]


async def test_forged_replayed_and_malformed_sns_are_refused(
        client: httpx.AsyncClient, queue: Queue, pki: PKI, cert_server: CertServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pyqueue.email.feedback")
    notice = bounce("Permanent", "eve@example.com")
    tampered = sns(pki, cert_server, notice)
    tampered["Message"] = json.dumps(bounce("Permanent", "victim@example.com"))
    cases = {
        "signature does not verify": [sns(pki, cert_server, notice, key=pki.other_key),
                                      tampered],
        "topic": [sns(pki, cert_server, notice, topic="arn:aws:sns:eu-west-1:666:evil")],
        "too old": [sns(pki, cert_server, notice, timestamp=now_iso(-7200))],
        "future": [sns(pki, cert_server, notice, timestamp=now_iso(3600))],
        "SNS host": [sns(pki, cert_server, notice,
                         cert_url="https://evil.example.com/SimpleNotificationService-1.pem"),
                     sns(pki, cert_server, notice,
                         cert_url=cert_server.cert_url.replace("https:", "http:")),
                     sns(pki, cert_server, notice,
                         cert_url="https://user@localhost/SimpleNotificationService-1.pem")],
        ".pem": [sns(pki, cert_server, notice, cert_url=cert_server.base + "/cert.txt")],
    }
    for expected, messages in cases.items():
        for message in messages:
            reply = await client.post("/ses", json=message)
            assert reply.status_code == 400, (expected, reply.text)
            assert expected in reply.json()["reason"]
    for raw in (b"not json", b"[]", json.dumps({"Type": "Notification"}).encode(),
                json.dumps({"Type": "Other"}).encode()):
        assert (await client.post("/ses", content=raw)).status_code == 400
    unsigned = sns(pki, cert_server, notice)
    unsigned["SignatureVersion"] = "3"
    assert (await client.post("/ses", json=unsigned)).status_code == 400
    assert (await client.post("/ses", content=b"x" * (300 * 1024))).status_code == 400
    for address in ("eve@example.com", "victim@example.com"):
        assert suppressed(queue, address) is None
    assert cert_server.cert_fetches <= 1  # bad URLs were never fetched
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) >= 12
    assert not any(tampered["Signature"][:20] in r.getMessage() or "victim" in r.getMessage()
                   for r in caplog.records)


# --- Resend webhooks ---------------------------------------------------------------------

async def test_resend_bounces_and_complaints(client: httpx.AsyncClient, queue: Queue) -> None:
    body = resend_event("email.bounced", "dora@example.com", "Permanent")
    reply = await client.post("/resend", content=body, headers=resend_headers(body))
    assert reply.status_code == 200 and reply.json()["hard"] == ["dora@example.com"]
    entry = suppressed(queue, "dora@example.com")
    assert entry is not None and entry["source"] == "resend"
    body = resend_event("email.complained", "ed@example.com")
    assert (await client.post("/resend", content=body,
                              headers=resend_headers(body))).status_code == 200
    assert suppressed(queue, "ed@example.com") is not None
    for _ in range(3):
        body = resend_event("email.bounced", "fay@example.com", "Transient")
        reply = await client.post("/resend", content=body, headers=resend_headers(body))
    assert reply.json()["suppressed"] == ["fay@example.com"]
    body = resend_event("email.delivered", "gus@example.com")
    reply = await client.post("/resend", content=body, headers=resend_headers(body))
    assert reply.json()["ignored"] == "email.delivered"


async def test_resend_duplicates_and_rotated_secrets(client: httpx.AsyncClient,
                                                     queue: Queue) -> None:
    body = resend_event("email.bounced", "hal@example.com", "Transient")
    headers = resend_headers(body)
    old = resend_headers(body, msg_id=headers["svix-id"], stamp=float(headers["svix-timestamp"]),
                         secret="whsec_" + base64.b64encode(b"x" * 32).decode())
    headers["svix-signature"] = f"{old['svix-signature']} {headers['svix-signature']}"
    assert (await client.post("/resend", content=body, headers=headers)).json()["soft"] == \
        ["hal@example.com"]
    retry = resend_headers(body, msg_id=headers["svix-id"])  # a retry: same id, new stamp
    assert (await client.post("/resend", content=body, headers=retry)).json() == \
        {"status": "duplicate"}


async def test_forged_replayed_and_malformed_webhooks_are_refused(
        client: httpx.AsyncClient, queue: Queue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pyqueue.email.feedback")
    body = resend_event("email.bounced", "ivy@example.com", "Permanent")
    good = resend_headers(body)
    cases = [
        ("signature does not match",
         resend_headers(body, secret="whsec_" + base64.b64encode(b"y" * 32).decode()), body),
        ("signature does not match", good,
         resend_event("email.bounced", "victim@example.com", "Permanent")),
        ("outside the tolerance", resend_headers(body, stamp=time.time() - 600), body),
        ("outside the tolerance", resend_headers(body, stamp=time.time() + 600), body),
        ("missing", {"content-type": "application/json"}, body),
        ("not an integer", {**good, "svix-timestamp": "soon"}, body),
        ("not JSON", resend_headers(b"{nope"), b"{nope"),
        ("type", resend_headers(b"[1]"), b"[1]"),
    ]
    for expected, headers, content in cases:
        reply = await client.post("/resend", content=content, headers=headers)
        assert reply.status_code == 400 and expected in reply.json()["reason"], expected
    assert suppressed(queue, "ivy@example.com") is None
    assert suppressed(queue, "victim@example.com") is None
    secret_part = SECRET[6:16]
    assert not any(secret_part in r.getMessage() or good["svix-signature"][3:20]
                   in r.getMessage() for r in caplog.records)


def test_the_app_needs_a_source(redis_url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SES_SNS_TOPIC_ARNS"):
        create_feedback_app("email", connection=redis_url)
    with pytest.raises(ConfigurationError, match="whsec_"):
        create_feedback_app("email", connection=redis_url, resend_secret="whsec_!!")


async def test_a_failed_apply_lets_the_retry_in(redis_url: str, queue: Queue) -> None:
    from pyqueue.email.feedback import Feedback
    from pyqueue.email.pgsuppressions import PostgresSuppressions

    event = json.loads(resend_event("email.bounced", "jan@example.com", "Permanent"))
    broken = Feedback(queue.name, connection=redis_url, suppressions=PostgresSuppressions(
        "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2"))
    with pytest.raises(Exception, match="connection"):
        await broken.apply("resend", "msg_1", event)
    await broken.close()
    working = Feedback(queue.name, connection=redis_url)
    assert (await working.apply("resend", "msg_1", event))["hard"] == ["jan@example.com"]
    assert (await working.apply("resend", "msg_1", event)) == {"status": "duplicate"}
    await working.close()
