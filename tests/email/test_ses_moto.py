"""The SES v2 transport against moto's server mode (a second, independent SES).

tests/email/test_providers.py runs the transport against a local fake
(_providers.py) that checks SigV4 signatures and replies with SES's error
codes; moto checks neither, but it is a widely used, separately kept model of
SES v2: it parses ``SendEmail`` with ``Content.Raw`` as AWS documents it,
refuses a sender whose identity is not verified, and keeps every sent raw
message, which the test reads back through moto's own ``/moto-api/data.json``.

The server is ``python -m moto.server`` in a subprocess this module starts on
a free loopback port and stops afterwards; nothing leaves the machine.
"""

from __future__ import annotations

import email
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from _worker_helpers import wait_for

from pyqueue import Queue
from pyqueue.email import enqueue_email
from pyqueue.email.classify import FAIL
from pyqueue.email.ses import SESSettings, SESTransport
from pyqueue.email.transport import ProviderError, transport_from_env

REGION = "eu-west-1"
ACCESS_KEY = "AKIDMOTOTESTKEY"
SECRET_KEY = "moto-test-secret"
DOMAIN = "app.example.com"
SENDER = f"App <noreply@{DOMAIN}>"


class MotoServer:
    """``python -m moto.server`` on a free loopback port, as a subprocess."""

    def __init__(self, log: Path) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it answers; ``pytest.skip`` when moto cannot start."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_text(errors="replace")[-500:]
                pytest.skip(f"moto's server did not start (exit {self.process.returncode}): "
                            f"{output}")
            try:
                if httpx.get(f"{self.url}/moto-api/data.json", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)  # not listening yet: poll again until the deadline
        self.stop()
        pytest.skip(f"moto's server did not answer on {self.url} within {timeout:g}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def reset(self) -> None:
        """Forget every identity and sent message (moto's own reset)."""
        httpx.post(f"{self.url}/moto-api/reset", timeout=5.0).raise_for_status()

    def verify_domain(self, domain: str) -> None:
        """``CreateEmailIdentity`` through boto3: moto then lets the domain send."""
        client = boto3.client("sesv2", endpoint_url=self.url, region_name=REGION,
                              aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY)
        try:
            reply = client.create_email_identity(EmailIdentity=domain)
        finally:
            client.close()
        assert reply["IdentityType"] == "DOMAIN"

    def sent(self) -> dict[str, dict[str, Any]]:
        """moto's record of every raw message sent, by MessageId."""
        data = httpx.get(f"{self.url}/moto-api/data.json", timeout=5.0).json()
        return {m["id"]: m for m in data["ses"]["RawMessage"]}


def parse(raw: str) -> EmailMessage:
    """moto keeps the raw message as text decoded from UTF-8: back to the bytes sent."""
    return email.message_from_bytes(raw.encode("utf-8"), policy=default_policy)


@pytest.fixture(scope="module")
def moto_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def moto(moto_module: MotoServer) -> MotoServer:
    moto_module.reset()
    moto_module.verify_domain(DOMAIN)
    return moto_module


def transport(server: MotoServer) -> SESTransport:
    return SESTransport(SESSettings(region=REGION, access_key_id=ACCESS_KEY,
                                    secret_access_key=SECRET_KEY, endpoint=server.url,
                                    from_address=SENDER, timeout=5.0))


def message(to: str, subject: str, uid: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uid}@{DOMAIN}>"
    msg.set_content(f"body of {subject}")
    return msg


async def test_transport_sends_raw_mime_that_moto_records(moto: MotoServer) -> None:
    ses = transport(moto)
    try:
        first = await ses.send(message("Ada <ada@example.com>", "First", "m1"),
                               f"noreply@{DOMAIN}", ["ada@example.com"], mail_uid="m1")
        second = await ses.send(message("bob@example.org", "Zweite Nachricht: Grüße", "m2"),
                                f"noreply@{DOMAIN}", ["bob@example.org"], mail_uid="m2")
    finally:
        await ses.close()
    sent = moto.sent()
    assert first.provider_id is not None and second.provider_id is not None
    assert set(sent) == {first.provider_id, second.provider_id}
    one, two = parse(sent[first.provider_id]["raw_data"]), \
        parse(sent[second.provider_id]["raw_data"])
    assert (one["From"], one["To"], one["Subject"], one["Message-ID"]) == (
        SENDER, "Ada <ada@example.com>", "First", f"<m1@{DOMAIN}>")
    assert (two["To"], two["Subject"]) == ("bob@example.org", "Zweite Nachricht: Grüße")
    assert two.get_content().strip() == "body of Zweite Nachricht: Grüße"
    assert sent[first.provider_id]["source"] == f"noreply@{DOMAIN}"
    assert "ada@example.com" in sent[first.provider_id]["destinations"]
    assert first.accepted == ["ada@example.com"]


async def test_unverified_sender_is_a_permanent_failure(moto: MotoServer) -> None:
    ses = transport(moto)
    try:
        with pytest.raises(ProviderError) as info:
            await ses.send(message("ada@example.com", "Nope", "m3"),
                           "noreply@unverified.example.net", ["ada@example.com"])
    finally:
        await ses.close()
    verdict = info.value.verdict
    assert (verdict.kind, verdict.code) == (FAIL, 400)
    assert "MessageRejected" in verdict.reason
    assert moto.sent() == {}


async def test_email_worker_sends_through_moto(moto: MotoServer, queue: Queue, started: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"EMAIL_TRANSPORT": "ses", "AWS_REGION": REGION,
                        "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                        "AWS_ENDPOINT_URL_SESV2": moto.url, "SES_FROM": SENDER,
                        "SES_TIMEOUT": "5"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    mails = [("ada@example.com", "Your code", "w1", {}),
             ("Bob <bob@example.org>", "Reset your password", "w2",
              {"bcc": "audit@example.com"}),
             ("cy@example.net", "Welcome", "w3", {})]
    jobs = [enqueue_email(queue, to=to, subject=subject, text="hello", mail_uid=uid, **extra)
            for to, subject, uid, extra in mails]
    refused = enqueue_email(queue, to="dee@example.com", subject="Not ours", text="x",
                            mail_uid="w4", from_address="noreply@unverified.example.net")
    await started(transport=transport_from_env())

    def finished() -> bool:
        return all(queue.get_job_state(j.id) in ("completed", "failed")
                   for j in [*jobs, refused])
    await wait_for(finished, 10.0, "the four mails to finish")

    sent = moto.sent()
    assert len(sent) == 3
    for job, (to, subject, uid, extra) in zip(jobs, mails, strict=True):
        stored = queue.get_job(job.id)
        assert stored is not None and queue.get_job_state(job.id) == "completed"
        result = stored.return_value
        assert result["transport"] == "ses"
        raw = sent[result["provider_id"]]
        mime = parse(raw["raw_data"])
        assert (mime["From"], mime["To"], mime["Subject"]) == (SENDER, to, subject)
        assert mime["Message-ID"] == result["message_id"] == f"<{uid}@{DOMAIN}>"
        assert "Bcc" not in mime
        for bcc in extra.values():
            assert bcc in raw["destinations"]
    assert queue.get_job_state(refused.id) == "failed"
    failed = queue.get_job(refused.id)
    assert failed is not None and "MessageRejected" in (failed.failed_reason or "")
